"""Flatpaks embedded in an installer ISO (today's Fedora Kinoite and Silverblue installers).

An Atomic desktop installer may carry Flatpak applications and runtimes next to its ostree payload,
so anaconda installs them with the desktop without a network. The image type's data names them
(`installer.today.flatpaks`: a registry and references `<type>/<id>/<arch>/<branch>`, images'
`installer_config.flatpaks`); a blueprint may replace the list (`installer.payload.flatpaks.force`).

Each reference is resolved, before the manifest is made, to the OCI image that holds it: the
registry's Flatpak index (`/index/static`, the registry-index spec Flatpak itself queries) names the
repository and manifest digest whose `org.flatpak.ref` label is the reference, and that image is then
resolved like any container (`distros.registry`). This is what osbuild/images' `flatpak.ResolveAll`
does. The manifest fetches the images with skopeo sources and imports each into a bare-user ostree
repository at `/flatpak/repo` of the anaconda tree (`org.osbuild.flatpak.build-import-bundle.oci`),
where anaconda's rpm-ostree payload finds them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distros.containers import ContainerSpec
from distros.errors import RequestError
from distros.registry import ContainerResolveError, resolve_container

REPOSITORY = "/flatpak/repo"
# images' flatpak.RegistryType: the only kind of registry there is (REGISTRY_TYPE_OCI)
REGISTRY_TYPE_OCI = 1
OCI_SCHEME = "oci+https"
_MAX_INDEX = 64 * 1024 * 1024


class FlatpakError(RequestError):
    """The image type's or blueprint's Flatpak list is unusable (a bad registry or reference)."""


class FlatpakResolveError(ContainerResolveError):
    """A Flatpak reference could not be resolved in its registry (answered as a container error)."""


class MissingFlatpaks(RequestError):
    """The compose did not resolve the Flatpaks its installer embeds."""


@dataclass(frozen=True)
class FlatpakSource:
    """One reference to resolve (images' flatpak.SourceSpec): its registry and `type/id/arch/branch`."""

    url: str           # the registry, `oci+https://host`
    ref: str
    remote_name: str = ""

    @property
    def arch(self) -> str:
        return self.ref.split("/")[2]

    def to_dict(self) -> dict[str, str]:
        return {"url": self.url, "ref": self.ref, "remote_name": self.remote_name}


def check_reference(ref: str) -> str:
    """images' NewReferenceFromString: exactly four non-empty `/`-separated parts."""
    parts = ref.split("/")
    if len(parts) != 4:
        raise FlatpakError(f"could not parse ref, got {len(parts)} parts")
    for index, part in enumerate(parts):
        if not part:
            raise FlatpakError(f"could not parse ref, got empty part at index {index}")
    return ref


def check_registry(url: str) -> str:
    """Only OCI registries (`oci+https://...`) hold Flatpaks images knows how to embed."""
    if urllib.parse.urlsplit(url).scheme != OCI_SCHEME:
        raise FlatpakError("unknown registry type")
    return url


def sources_from_data(entries: Sequence[Mapping[str, Any]] | None, *, arch: str,
                      variables: Mapping[str, str]) -> list[FlatpakSource]:
    """The image type's `flatpaks` (`[{registry: {remote_name, url}, references: [...]}]`), its
    references' `{arch}`/`{major}`/... placeholders filled in, flattened in order."""
    out: list[FlatpakSource] = []
    for entry in entries or []:
        registry = entry.get("registry")
        if not registry:
            raise FlatpakError("registry is mandatory for flatpak")
        url = check_registry(str(registry.get("url") or ""))
        references = list(entry.get("references") or [])
        if not references:
            raise FlatpakError("references are mandatory for flatpak")
        for template in references:
            ref = str(template).format(arch=arch, **variables)
            out.append(FlatpakSource(url=url, ref=check_reference(ref),
                                     remote_name=str(registry.get("remote_name") or "")))
    return out


def apply_blueprint(sources: list[FlatpakSource], customizations: Mapping[str, Any] | None,
                    arch: str) -> list[FlatpakSource]:
    """`[customizations.installer.payload.flatpaks] force = [...]` replaces the image type's list
    (an empty list embeds none). As in images, `$arch` in a reference is the image's architecture and
    the blueprint's registry `remote_name` is not carried over."""
    installer = (customizations or {}).get("installer") or {}
    meta = ((installer.get("payload") or {}).get("flatpaks")) or {}
    force = meta.get("force") if isinstance(meta, Mapping) else None
    if force is None:
        return sources
    out: list[FlatpakSource] = []
    for entry in force:
        registry = entry.get("registry")
        if not registry:
            raise FlatpakError("registry is mandatory for blueprint flatpak")
        url = check_registry(str(registry.get("url") or ""))
        for template in entry.get("references") or []:
            out.append(FlatpakSource(url=url, ref=check_reference(str(template).replace("$arch", arch))))
    return out


def spec_from_dict(data: Mapping[str, Any]) -> ContainerSpec:
    """A resolved Flatpak image (Go field names, as stored with the compose). Unlike a blueprint
    container, its local name stays what the resolver said (the mock leaves it empty)."""
    return ContainerSpec(
        source=str(data.get("Source") or ""),
        digest=str(data.get("Digest") or ""),
        image_id=str(data.get("ImageID") or ""),
        local_name=str(data.get("LocalName") or ""),
        tls_verify=data.get("TLSVerify"),
        list_digest=str(data.get("ListDigest") or ""),
    )


def import_stages(specs: Iterable[ContainerSpec]) -> list[dict[str, Any]]:
    """images' AnacondaInstaller.flatpakStages: a bare-user repository (it is squashed into the
    installer's root image, so its objects stay uncompressed), then one import per image."""
    specs = list(specs)
    if not specs:
        return []
    stages: list[dict[str, Any]] = [{"type": "org.osbuild.ostree.init",
                                     "options": {"mode": "bare-user", "path": REPOSITORY}}]
    for spec in specs:
        stages.append({
            "type": "org.osbuild.flatpak.build-import-bundle.oci",
            "inputs": {"containers": {"type": "org.osbuild.containers", "origin": "org.osbuild.source",
                                      "references": {spec.image_id: {"name": spec.local_name}}}},
            "options": {"repository": "tree://" + REPOSITORY},
        })
    return stages


# --- resolving against a registry ----------------------------------------------------------------


def _index_url(base: str) -> str:
    """The registry's static Flatpak index with the query Flatpak sends (Go's url.Values.Encode:
    keys sorted, `:` escaped)."""
    query = urllib.parse.urlencode(sorted({"label:org.flatpak.ref:exists": "1", "os": "linux",
                                           "tag": "latest"}.items()))
    return base.rstrip("/") + "/index/static?" + query


def fetch_index(base: str, *, timeout: float = 300.0) -> dict[str, Any]:
    """The decoded index of `base` (the registry URL without `oci+`)."""
    url = _index_url(base)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (https registry)
            body = resp.read(_MAX_INDEX)
    except urllib.error.HTTPError as exc:
        raise FlatpakResolveError(f"registry index {url!r} returned status: {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FlatpakResolveError(f"registry index {url!r}: {exc}") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise FlatpakResolveError(f"registry index {url!r} is not JSON") from exc
    if not isinstance(data, dict):
        raise FlatpakResolveError(f"registry index {url!r} is not a JSON object")
    return data


def find_in_index(index: Mapping[str, Any], ref: str) -> tuple[str, str]:
    """(repository, manifest digest) of the first image labelled `org.flatpak.ref: <ref>`."""
    for result in index.get("Results") or []:
        for image in result.get("Images") or []:
            if not image or (image.get("Labels") or {}).get("org.flatpak.ref") != ref:
                continue
            if not index.get("Registry"):
                raise FlatpakResolveError(f"registry index: found {ref!r} but Registry field was missing")
            return str(result.get("Name") or ""), str(image.get("Digest") or "")
    raise FlatpakResolveError(f"did not find image {ref!r}")


def image_name(registry: str, repository: str) -> str:
    """`host/repo` from the index's registry URL and repository name."""
    host = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    return f"{host}/{repository.lstrip('/')}"


def resolve_all(sources: Sequence[FlatpakSource], *, timeout: float = 300.0,
                container_resolver: Any = None, index_fetcher: Any = None) -> list[dict[str, Any]]:
    """Every source → its container spec dict (Go field names); one index fetch per registry."""
    fetch = index_fetcher or (lambda base: fetch_index(base, timeout=timeout))
    indexes: dict[str, Mapping[str, Any]] = {}
    specs = []
    for source in sources:
        base = source.url.removeprefix("oci+")
        if base == source.url:
            raise FlatpakResolveError(f"flatpak registry {source.url!r}: missing oci+ prefix")
        if base not in indexes:
            indexes[base] = fetch(base)
        index = indexes[base]
        repository, digest = find_in_index(index, source.ref)
        name = image_name(str(index["Registry"]), repository)
        image = f"{name}@{digest}"
        entry = {"source": image, "name": repository}
        try:
            if container_resolver is not None:
                spec = dict(container_resolver(entry, source.arch))
            else:
                spec = resolve_container(entry, arch=source.arch, timeout=timeout)
        except ContainerResolveError as exc:
            raise FlatpakResolveError(f"failed to resolve flatpak: resolve flatpak container {image!r}: {exc}") from exc
        # as images' container specs: the source names the repository, the digest stands apart
        # (osbuild's skopeo source fetches `<name>@<digest>`)
        spec["Source"] = name
        specs.append(spec)
    return specs
