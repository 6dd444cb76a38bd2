"""Upload targets: each moves a finished image to where users run it.

`TARGETS` names them without importing the cloud SDKs (the pipeline reads it to declare one
Celery queue `upload.<target>` per target). The classes live in `uploaders.base`'s registry.
"""

TARGETS: tuple[str, ...] = ("aws", "azure", "local", "s3")
