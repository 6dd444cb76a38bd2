"""Container target (osbuild-composer's `container`): the image's OCI archive pushed to a registry.

As in osbuild-composer, the upload's image name is the destination reference
(`registry.example.com:5000/team/os:latest`); the settings only carry the credentials and whether
to verify the registry's TLS certificate. skopeo does the push: it speaks the registry protocol
(chunked blob uploads, mounts of blobs the registry has, manifest formats) and is what
osbuild-composer's container code is built on. Credentials reach skopeo in a 0600 auth file in a
private directory, never on its command line, where `ps` would show them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from uploaders.base import (
    SettingInfo,
    SettingsError,
    UploadCancelled,
    UploadContext,
    Uploader,
    UploadError,
    register,
)

SKOPEO = "skopeo"
POLL_SECONDS = 0.2
# [registry[:port]/]path[:tag][@digest], as container references are written
REFERENCE_RE = re.compile(r"(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?"
                          r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+|[a-z0-9]+(?:[._-][a-z0-9]+)*)"
                          r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?")


def split_reference(reference: str) -> tuple[str, str, str]:
    """`host:port/path:tag` → (registry host, repository path, tag); Docker Hub when no host."""
    match = REFERENCE_RE.fullmatch(reference)
    if match is None:
        raise SettingsError(f'Image name "{reference}" is not a container reference '
                            "(registry.example.com/namespace/name:tag)")
    repo, tag = match.group("repo"), match.group("tag") or "latest"
    first, _, rest = repo.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag
    return "docker.io", repo if rest else f"library/{repo}", tag


@register
class ContainerUploader(Uploader):
    name = "container"
    display = "Container registry"
    supported_types = ("container", "iot-container", "edge-container")
    settings_info = (
        SettingInfo("username", "Registry user name"),
        SettingInfo("password", "Registry password or token", secret=True),
        SettingInfo("tls_verify", "Verify the registry's TLS certificate (default: true)",
                    type="boolean"),
    )

    @classmethod
    def validate(cls, settings: dict[str, Any], image_name: str | None = None,
                 image_type: str | None = None) -> dict[str, Any]:
        settings = super().validate(settings, image_name, image_type)
        if image_name is not None:
            split_reference(image_name.strip())
        return settings

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if settings.get("password") and not settings.get("username"):
            raise SettingsError("Setting 'password' needs 'username'")

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        if shutil.which(SKOPEO) is None:
            raise UploadError("skopeo is not installed on the upload worker")
        reference = image_name.strip()
        registry, repository, tag = split_reference(reference)
        tls_verify = settings.get("tls_verify", True)
        size = image_path.stat().st_size
        where = f"registry {registry}"
        with tempfile.TemporaryDirectory(prefix="container-upload-") as scratch:
            os.chmod(scratch, 0o700)
            digest_file = Path(scratch) / "digest"
            command = [SKOPEO, "copy", "--retry-times", "2", "--digestfile", str(digest_file),
                       f"--dest-tls-verify={'true' if tls_verify else 'false'}"]
            if settings.get("username"):
                auth = Path(scratch) / "auth.json"
                token = base64.b64encode(
                    f"{settings['username']}:{settings.get('password') or ''}".encode()).decode()
                fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump({"auths": {registry: {"auth": token}}}, fh)
                command += ["--dest-authfile", str(auth)]
            else:  # no credentials given: don't pick up the worker's own login files
                command += ["--dest-no-creds"]
            command += [f"oci-archive:{image_path}", f"docker://{registry}/{repository}:{tag}"]
            ctx.log(f"pushing {image_path.name} ({size} bytes) to {registry}/{repository}:{tag}"
                    f"{'' if tls_verify else ' (TLS not verified)'}")
            self._run(command, ctx, where)
            digest = digest_file.read_text().strip() if digest_file.exists() else ""
        ctx.add_sent(size)  # an upper bound: blobs the registry already has are not sent again
        ctx.progress(size, size)
        ctx.log(f"pushed {registry}/{repository}:{tag}" + (f" ({digest})" if digest else ""))
        return {"registry": registry, "repository": repository, "tag": tag,
                "reference": f"{registry}/{repository}:{tag}", "digest": digest}

    @staticmethod
    def _run(command: list[str], ctx: UploadContext, where: str) -> str:
        """Run skopeo in its own process group, killed on cancel. Its step lines (`Copying blob
        …`, `Writing manifest …`) reach the upload log as they come; on failure its last line
        names the cause."""
        env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE",)}
        env.setdefault("HOME", tempfile.gettempdir())
        out = tempfile.TemporaryFile()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        stop = threading.Event()
        seen = 0

        def log_steps() -> None:
            nonlocal seen
            out.seek(seen)
            chunk = out.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            seen += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if line.startswith(("Copying ", "Writing ", "Storing ")):
                    ctx.log(line.strip())

        try:
            while proc.poll() is None:
                if ctx.should_cancel():
                    os.killpg(proc.pid, 15)
                    proc.wait(30)
                    raise UploadCancelled("upload cancelled")
                log_steps()
                stop.wait(POLL_SECONDS)
            log_steps()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        out.seek(0)
        text = out.read().decode(errors="replace")
        out.close()
        if proc.returncode != 0:
            raise UploadError(f"pushing to {where}: {_reason(text)}")
        return text


def _reason(output: str) -> str:
    """The last line skopeo printed, which holds the cause (x509, unauthorized, no such host…)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else "skopeo failed"
    reason = re.sub(r'^time="[^"]*" level=\w+ msg="?', "", reason).rstrip('"')
    hints = (("x509", "the registry's TLS certificate is not trusted (set tls_verify = false for a "
                      "self-signed one)"),
             ("unauthorized", "authentication failed: check username and password"),
             ("authentication required", "authentication required: set username and password"),
             ("connection refused", "the registry refused the connection"),
             ("no such host", "the registry's host name does not resolve"))
    for needle, hint in hints:
        if needle in reason.lower():
            return f"{hint} ({reason})"
    return reason

