"""repomd.xml signatures (`check_repogpg`): a detached OpenPGP signature checked with gpg.

With `check_repogpg` a repository's metadata is trusted only if `repodata/repomd.xml.asc` is a
good signature by one of the repository's own keys (its `gpgkeys`: armored key blocks or URLs to
them); every other document is then pinned by the checksums in that repomd.xml.  The keys go
into a throw-away GnuPG home, so nothing depends on (or changes) a keyring of the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

GPG = "gpg"
_TIMEOUT = 60


class SignatureError(Exception):
    """The signature is missing, malformed, made by an unknown key, or does not match."""


def verify_detached(data: bytes, signature: bytes, keys: list[bytes]) -> str:
    """Check `signature` over `data` against `keys`; returns the signing key's fingerprint."""
    gpg = shutil.which(GPG)
    if gpg is None:
        raise SignatureError("check_repogpg needs gpg, which is not installed")
    if not keys:
        raise SignatureError("check_repogpg is set but the repository has no gpgkeys")
    with tempfile.TemporaryDirectory(prefix="repogpg-") as home:
        home_path = Path(home)
        os.chmod(home_path, 0o700)
        keyfile = home_path / "keys.asc"
        keyfile.write_bytes(b"\n".join(keys))
        base = [gpg, "--homedir", home, "--batch", "--no-tty", "--quiet", "--no-autostart"]
        imported = subprocess.run(base + ["--import", str(keyfile)], capture_output=True,
                                  timeout=_TIMEOUT)
        if imported.returncode != 0:
            raise SignatureError("cannot import the repository's gpgkeys: "
                                 + _last_line(imported.stderr))
        (home_path / "repomd.xml").write_bytes(data)
        (home_path / "repomd.xml.asc").write_bytes(signature)
        checked = subprocess.run(
            base + ["--status-fd", "1", "--verify", str(home_path / "repomd.xml.asc"),
                    str(home_path / "repomd.xml")], capture_output=True, timeout=_TIMEOUT)
    status = checked.stdout.decode("utf-8", "replace").splitlines()
    for line in status:
        if line.startswith("[GNUPG:] VALIDSIG "):
            return line.split()[2]
    if any(line.startswith("[GNUPG:] BADSIG ") for line in status):
        raise SignatureError("bad signature: repomd.xml was changed after it was signed")
    if any(line.startswith("[GNUPG:] NO_PUBKEY ") or line.startswith("[GNUPG:] ERRSIG ")
           for line in status):
        raise SignatureError("signed by a key that is not among the repository's gpgkeys")
    raise SignatureError("not a valid signature: " + _last_line(checked.stderr))


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "gpg failed"
