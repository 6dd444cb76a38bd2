"""Repository GPG keys given by URL, fetched once into key text for the rpm stages.

osbuild's rpm stage imports keys from their text; repository files and Weldr sources often name
keys by URL (`https://…/RPM-GPG-KEY-…`, `file:///etc/pki/rpm-gpg/…`). osbuild-composer resolves
those while depsolving; here the compose's depsolve step calls `inline_gpgkeys` before asking for
the manifest, so manifest generation itself never touches the network.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

KEY_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
MAX_KEY_BYTES = 1024 * 1024


class GPGKeyError(RuntimeError):
    """A key URL could not be read (the message names the URL)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot fetch GPG key {url}: {reason}")
        self.url = url


def fetch_key(url: str, timeout: float = 30.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s)/file by design
            data = resp.read(MAX_KEY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise GPGKeyError(url, str(getattr(exc, "reason", exc))) from exc
    if len(data) > MAX_KEY_BYTES:
        raise GPGKeyError(url, "larger than 1 MiB")
    text = data.decode("utf-8", errors="replace")
    if KEY_BEGIN not in text:
        raise GPGKeyError(url, "not an ASCII-armored public key")
    return text


def _keys_of(repo: dict[str, Any]) -> list[str]:
    keys = repo.get("gpgkeys")
    if keys is None:
        keys = [repo["gpgkey"]] if repo.get("gpgkey") else []
    elif isinstance(keys, str):
        keys = [keys]
    out: list[str] = []
    for k in keys:
        # a Weldr source may put several URLs in one string
        out.extend(k.split() if KEY_BEGIN not in k else [k])
    return out


def inline_gpgkeys(repositories: Iterable[dict[str, Any]], *, timeout: float = 30.0,
                   fetch: Callable[[str, float], str] | None = None) -> list[dict[str, Any]]:
    """Copies of the repositories whose `gpgkeys` hold key text only (each URL fetched once)."""
    get = fetch or fetch_key
    fetched: dict[str, str] = {}
    out = []
    for repo in repositories:
        keys = []
        for key in _keys_of(repo):
            if KEY_BEGIN in key:
                keys.append(key)
                continue
            if key not in fetched:
                fetched[key] = get(key, timeout)
            keys.append(fetched[key])
        new = {k: v for k, v in repo.items() if k != "gpgkey"}
        if keys or "gpgkeys" in repo or "gpgkey" in repo:
            new["gpgkeys"] = keys
        out.append(new)
    return out
