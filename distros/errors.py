"""Errors a compose request can cause in the image definitions, with their Weldr rendering."""

from __future__ import annotations


class RequestError(ValueError):
    """The blueprint or options do not fit the image type.

    osbuild-composer reports these from POST /compose as `ManifestCreationFailed`
    ("failed to initialize osbuild manifest: ..."), before anything is queued.
    """

    api_id = "ManifestCreationFailed"
    http_status = 400

    @property
    def api_message(self) -> str:
        return f"failed to initialize osbuild manifest: {self}"
