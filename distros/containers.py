"""Container images embedded in an OS tree (blueprint `[[containers]]`).

A blueprint may ask for container images to be pre-pulled into the image's container storage.
The compose resolves each `source` to a `ContainerSpec` (the image's digest, its local image ID and,
for multi-arch images, the manifest list digest); the manifest then fetches them with skopeo sources
and copies them into the tree with the `org.osbuild.skopeo` stage. In an ostree commit `/var` is not
part of the commit, so images go to `/usr/share/containers/storage`, registered as an additional
image store in `/etc/containers/storage.conf`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OSTREE_STORAGE = "/usr/share/containers/storage"
STORAGE_CONF = "/etc/containers/storage.conf"


@dataclass(frozen=True)
class ContainerSpec:
    """A resolved container image, in the golden cases' `containers` shape (Go field names)."""

    source: str  # e.g. registry.example.com/app:latest
    digest: str  # sha256:... of the image manifest for this arch
    image_id: str  # sha256:... of the image config: the key of the skopeo source
    local_name: str = ""
    tls_verify: bool | None = None
    list_digest: str = ""  # sha256:... of the manifest list, when the source was one

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ContainerSpec":
        def get(*names: str) -> Any:
            for name in names:
                if data.get(name) not in (None, ""):
                    return data[name]
            return None

        return cls(
            source=str(get("Source", "source") or ""),
            digest=str(get("Digest", "digest") or ""),
            image_id=str(get("ImageID", "image_id") or ""),
            local_name=str(get("LocalName", "local_name", "name") or get("Source", "source") or ""),
            tls_verify=get("TLSVerify", "tls_verify"),
            list_digest=str(get("ListDigest", "list_digest") or ""),
        )


def blueprint_containers(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The blueprint's `[[containers]]` entries (source, name, tls-verify) to resolve."""
    return [dict(c) for c in blueprint.get("containers") or [] if c.get("source")]


def skopeo_stages(specs: Iterable[ContainerSpec], *, ostree: bool) -> list[dict[str, Any]]:
    specs = list(specs)
    if not specs:
        return []
    stages: list[dict[str, Any]] = []
    destination: dict[str, Any] = {"type": "containers-storage"}
    if ostree:
        destination["storage-path"] = OSTREE_STORAGE
        stages.append(
            {
                "type": "org.osbuild.containers.storage.conf",
                "options": {
                    "filename": STORAGE_CONF,
                    "config": {"storage": {"options": {"additionalimagestores": [OSTREE_STORAGE]}}},
                },
            }
        )
    inputs: dict[str, Any] = {
        "images": {
            "type": "org.osbuild.containers",
            "origin": "org.osbuild.source",
            "references": {s.image_id: {"name": s.local_name} for s in specs},
        }
    }
    lists = [s.list_digest for s in specs if s.list_digest]
    if lists:
        inputs["manifest-lists"] = {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": lists}
    stages.append({"type": "org.osbuild.skopeo", "inputs": inputs, "options": {"destination": destination}})
    return stages


def container_sources(specs: Iterable[ContainerSpec]) -> dict[str, dict[str, Any]]:
    """Items of the `org.osbuild.skopeo` (images) and `org.osbuild.skopeo-index` (lists) sources."""
    images: dict[str, Any] = {}
    indexes: dict[str, Any] = {}
    for s in specs:
        image: dict[str, Any] = {"name": s.source, "digest": s.digest}
        if s.tls_verify is not None:
            image["tls-verify"] = bool(s.tls_verify)
        images[s.image_id] = {"image": image}
        if s.list_digest:
            index: dict[str, Any] = {"name": s.source}
            if s.tls_verify is not None:
                index["tls-verify"] = bool(s.tls_verify)
            indexes[s.list_digest] = {"image": index}
    out: dict[str, dict[str, Any]] = {}
    if images:
        out["org.osbuild.skopeo"] = images
    if indexes:
        out["org.osbuild.skopeo-index"] = indexes
    return out


def add_container_sources(ctx: Any, specs: Iterable[ContainerSpec]) -> None:
    for name, items in container_sources(specs).items():
        ctx.extra_sources.setdefault(name, {}).update(items)
