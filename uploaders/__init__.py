"""Upload targets: each moves a finished image to where users run it.

`TARGETS` names them as osbuild-composer's Weldr API does, without importing any cloud SDK (the
pipeline reads it to declare one Celery queue `upload.<target>` per target). `ALIASES` are the
other names requests may use: osbuild-composer's `generic.s3` (handled as `aws.s3`, as there) and
the names this service used before (`s3`). The classes live in `uploaders.base`'s registry.
"""

TARGETS: tuple[str, ...] = ("aws", "aws.s3", "azure", "container", "gcp", "local", "oci", "vmware")

ALIASES: dict[str, str] = {"generic.s3": "aws.s3", "s3": "aws.s3"}


def canonical_target(name: str) -> str:
    """The target a provider name means (`generic.s3` → `aws.s3`); unknown names come back as given."""
    return ALIASES.get(name, name)


def target_aliases(name: str) -> list[str]:
    """Every other name of a target, e.g. to find profiles saved under an old name."""
    return sorted(alias for alias, target in ALIASES.items() if target == name)
