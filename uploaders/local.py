"""Local target: copy the image into a directory on the API host (an NFS export, a libvirt pool).

The copy keeps holes (only allocated extents are copied), goes to a temporary name and is renamed
when complete, so a reader of the directory never sees half an image under the final name.
Which directories may be written is the operator's choice, setting `local_upload_dirs`: an upload's
directory must be one of them or below one, once symlinks are resolved; with none configured the
target is refused (the service often runs as root: a profile must not name /etc).  The file is
named after the upload's image name with the image's own extension (`my-local.tar.xz` for
`root.tar.xz`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from uploaders.base import (
    SettingInfo,
    SettingsError,
    UploadContext,
    Uploader,
    UploadError,
    allocated_bytes,
    data_extents,
    register,
)

COPY_CHUNK = 8 * 1024 * 1024
COMPRESSIONS = (".xz", ".gz", ".zst", ".bz2")


def allowed_directory(directory: str, allowed: Iterable[str]) -> Path:
    """`directory` with symlinks resolved, when it is one of `allowed` or below one; SettingsError
    naming the setting otherwise."""
    roots = [Path(os.path.realpath(a)) for a in allowed]
    if not roots:
        raise SettingsError("the local upload target is turned off: no directory is configured in "
                            "the setting local_upload_dirs")
    real = Path(os.path.realpath(directory))
    if not any(real == root or root in real.parents for root in roots):
        raise SettingsError(f"directory {directory} is not in local_upload_dirs "
                            f"({', '.join(str(a) for a in allowed)})")
    return real


def file_name(image_name: str, image_path: Path) -> str:
    """The image name with the image file's extension: `.tar.xz` stays whole (a compressed
    archive's inner extension is part of what the file is); not doubled when already there."""
    suffixes = image_path.suffixes
    extension = "".join(suffixes[-2:]) if len(suffixes) >= 2 and suffixes[-1] in COMPRESSIONS \
        else image_path.suffix
    name = image_name.replace("/", "_")
    return name if extension and name.endswith(extension) else name + extension


@register
class LocalUploader(Uploader):
    name = "local"
    display = "Directory on the composer host"
    supported_types = ()
    settings_info = (
        SettingInfo("directory", "Directory", required=True, placeholder="/var/lib/images",
                    regex=r"/.*"),
        SettingInfo("filename", "File name", placeholder="defaults to the image name and suffix",
                    regex=r"[^/\x00]+"),
        SettingInfo("overwrite", "Overwrite an existing file", type="boolean"),
    )
    allowed_directories: tuple[str, ...] = ()

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        directory = Path(settings["directory"])
        if ".." in directory.parts:
            raise SettingsError("Setting 'directory' must not contain '..'")
        if settings.get("filename") in (".", ".."):
            raise SettingsError("Setting 'filename' is not a file name")

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        try:
            directory = allowed_directory(settings["directory"], self.allowed_directories)
        except SettingsError as exc:
            raise UploadError(str(exc)) from None
        if not directory.is_dir():
            raise UploadError(f"directory {directory} does not exist")
        name = settings.get("filename") or file_name(image_name, image_path)
        target = directory / name
        if target.exists() and not settings.get("overwrite"):
            raise UploadError(f"{target} exists (set 'overwrite' to replace it)")
        partial = directory / f".{name}.partial"
        size = image_path.stat().st_size
        total = max(allocated_bytes(image_path), 1)
        done = 0
        try:
            src = os.open(image_path, os.O_RDONLY)
            try:
                # O_NOFOLLOW: a link planted under the partial name is not written through
                out_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                with open(out_fd, "wb") as out:
                    out.truncate(size)
                    for start, end in data_extents(src, size):
                        offset = start
                        while offset < end:
                            ctx.check_cancelled()
                            data = os.pread(src, min(COPY_CHUNK, end - offset), offset)
                            if data.count(0) != len(data):
                                out.seek(offset)
                                out.write(data)
                                ctx.add_sent(len(data))
                            offset += len(data)
                            done += len(data)
                            ctx.progress(min(done, total), total)
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                os.close(src)
            os.replace(partial, target)
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise UploadError(f"copying to {target}: {exc.strerror or exc}") from exc
            raise
        ctx.progress(total, total)
        ctx.log(f"copied {image_path.name} to {target}")
        return {"path": str(target)}
