"""Local target: copy the image into a directory on the API host (an NFS export, a libvirt pool).

The copy keeps holes (only allocated extents are copied), goes to a temporary name and is renamed
when complete, so a reader of the directory never sees half an image under the final name.
Which directories may be written is the operator's choice: `upload_defaults.local.allowed_directories`
(a list); without it any absolute directory the service may write is accepted.
"""

from __future__ import annotations

import os
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
        directory = Path(settings["directory"])
        allowed = [Path(d) for d in self.allowed_directories]
        if allowed and not any(directory == a or a in directory.parents for a in allowed):
            raise UploadError(f"directory {directory} is not one of the allowed upload directories")
        if not directory.is_dir():
            raise UploadError(f"directory {directory} does not exist")
        name = settings.get("filename") or (image_name.replace("/", "_") + image_path.suffix)
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
                with open(partial, "wb") as out:
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
