"""Container registry lookups: a blueprint's image reference → the digests a manifest pins.

Speaks the registry HTTP API (distribution spec v2) directly: fetch the manifest of a tag (or
digest), follow a manifest list / OCI index to the entry for the image's architecture, and read
the image's config digest (its image ID). Anonymous bearer tokens are fetched when the registry
asks for them. `tls-verify = false` in the blueprint allows plain HTTP and unverified TLS, as
containers/image does for insecure registries.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distros.ostree import OSTreeResolveError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
LIST_TYPES = MANIFEST_TYPES[:2]
# OCI/Go architecture names of our arches
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}
DOCKER_HUB = "registry-1.docker.io"
_MAX_MANIFEST = 4 * 1024 * 1024


class ContainerResolveError(OSTreeResolveError):
    """A blueprint container image could not be resolved (osbuild-composer's ContainerResolveError)."""

    api_id = "ContainerResolveError"
    http_status = 500


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def ref(self) -> str:
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """The repository's full name without tag or digest, as containers/image's `Name()` gives
        it (Docker Hub spelled `docker.io`): images and osbuild-composer store this as a spec's
        source."""
        domain = "docker.io" if self.registry == DOCKER_HUB else self.registry
        return f"{domain}/{self.repository}"

    @property
    def normalized(self) -> str:
        """The full name with its tag (`latest` when neither tag nor digest is given) and digest,
        as containers/image's `TagNameOnly(…).String()`: a spec's local name by default."""
        text = self.name
        if self.tag or not self.digest:
            text += ":" + (self.tag or "latest")
        if self.digest:
            text += "@" + self.digest
        return text


def parse_reference(source: str) -> Reference:
    """`[registry[:port]/]repo[:tag][@sha256:...]`, Docker Hub when no registry is named."""
    rest = source
    for prefix in ("docker://",):
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
    digest = ""
    if "@" in rest:
        rest, digest = rest.split("@", 1)
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
        if "/" not in path:
            path = "library/" + path
    tag = ""
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", path) or (digest and not digest.startswith("sha256:")):
        raise ContainerResolveError(f"invalid container image reference {source!r}")
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)


class _Client:
    def __init__(self, ref: Reference, tls_verify: bool, timeout: float) -> None:
        self.ref = ref
        self.timeout = timeout
        self.scheme = "https" if tls_verify else "http"
        self.context = None if tls_verify else ssl._create_unverified_context()  # noqa: S323 (asked for)
        self.token = ""

    def get(self, path: str, accept: tuple[str, ...] = MANIFEST_TYPES) -> tuple[bytes, Mapping[str, str]]:
        url = f"{self.scheme}://{self.ref.registry}/v2/{self.ref.repository}/{path}"
        for attempt in range(2):
            headers = {"Accept": ", ".join(accept)}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as resp:  # noqa: S310
                    return resp.read(_MAX_MANIFEST), dict(resp.headers.items())
            except urllib.error.HTTPError as exc:
                challenge = exc.headers.get("WWW-Authenticate", "") if exc.headers else ""
                if exc.code == 401 and attempt == 0 and challenge.lower().startswith("bearer "):
                    self.token = self._token(challenge)
                    continue
                raise ContainerResolveError(f"{url}: registry answered {exc.code} {exc.reason}") from exc
            except (urllib.error.URLError, OSError) as exc:
                raise ContainerResolveError(f"{url}: {exc}") from exc
        raise ContainerResolveError(f"{url}: not authorized")

    def _token(self, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise ContainerResolveError(f"registry {self.ref.registry}: unusable auth challenge")
        url = realm + "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout, context=self.context) as resp:  # noqa: S310
                body = json.loads(resp.read(1024 * 1024))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ContainerResolveError(f"registry {self.ref.registry}: token request failed: {exc}") from exc
        return str(body.get("token") or body.get("access_token") or "")


def _digest(body: bytes, headers: Mapping[str, str]) -> str:
    header = {k.lower(): v for k, v in headers.items()}.get("docker-content-digest", "")
    return header if header.startswith("sha256:") else "sha256:" + hashlib.sha256(body).hexdigest()


def resolve_container(entry: Mapping[str, Any], *, arch: str, timeout: float = 30.0) -> dict[str, Any]:
    """A blueprint `[[containers]]` entry (source, name, tls-verify) → its spec for the manifest.

    As images' container resolver (osbuild-composer's): the source is the repository's normalized
    name, the digest apart; the local name is the blueprint's `name`, else the normalized
    reference with its tag."""
    source = str(entry["source"])
    tls_verify = entry.get("tls-verify")
    ref = parse_reference(source)
    client = _Client(ref, tls_verify is not False, timeout)
    body, headers = client.get(f"manifests/{ref.ref}")
    list_digest = ""
    manifest = _json(body, source)
    if manifest.get("mediaType") in LIST_TYPES or "manifests" in manifest:
        list_digest = _digest(body, headers)
        want = GOARCH.get(arch, arch)
        entry_for_arch = next(
            (m for m in manifest.get("manifests") or []
             if (m.get("platform") or {}).get("architecture") == want and (m.get("platform") or {}).get("os", "linux") == "linux"),
            None,
        )
        if entry_for_arch is None:
            raise ContainerResolveError(f"{source}: no image for architecture {want}")
        body, headers = client.get(f"manifests/{entry_for_arch['digest']}", MANIFEST_TYPES[2:])
        manifest = _json(body, source)
    config = (manifest.get("config") or {}).get("digest", "")
    if not str(config).startswith("sha256:"):
        raise ContainerResolveError(f"{source}: manifest has no image config")
    spec: dict[str, Any] = {
        "Source": ref.name,
        "Digest": _digest(body, headers),
        "ImageID": config,
        "LocalName": entry.get("name") or ref.normalized,
        "TLSVerify": tls_verify,
    }
    if list_digest:
        spec["ListDigest"] = list_digest
    return spec


def _json(body: bytes, source: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ContainerResolveError(f"{source}: registry sent no JSON manifest") from exc
    if not isinstance(data, dict):
        raise ContainerResolveError(f"{source}: registry sent no JSON manifest")
    return data
