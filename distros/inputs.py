"""A compose's external inputs, resolved before its manifest: ostree commits, container images and
Flatpaks an installer embeds.

osbuild-composer resolves them while handling POST /compose, so that a bad URL, ref or image is
answered at once (OSTreeOptionsError, ContainerResolveError) instead of failing a queued build;
the resolved specs are stored with the compose and handed to the engine as manifest options
(`ostree_commits`, `containers`, `flatpaks`). Test-mode composes get deterministic stand-ins, no
network.
"""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from distros.ostree import RHSM_SECRETS, CommitSpec, OSTreeResolveError, SourceSpec, test_commit
from distros.registry import ContainerResolveError, resolve_container

__all__ = ["ContainerResolveError", "prepare_compose", "prepare_containers", "prepare_flatpaks", "resolve_commit"]

_REF_RE = re.compile(r"^(?:[\w\d][-._\w\d]*/)*[\w\d][-._\w\d]*$")
_CHECKSUM_RE = re.compile(r"^[0-9a-f]{64}$")
# subscription-manager's entitlement certificates: what an RHSM-protected repository wants to see
ENTITLEMENT_DIR = "/etc/pki/entitlement"


def valid_ref(ref: str) -> bool:
    return bool(_REF_RE.match(ref))


def resolve_commit(source: SourceSpec, *, timeout: float = 30.0, entitlement_dir: str = ENTITLEMENT_DIR) -> CommitSpec:
    """The commit a ref points to now, read from the repository's `refs/heads/<ref>`."""
    if not valid_ref(source.ref):
        raise OSTreeResolveError(f"Invalid ostree ref {source.ref!r}")
    commit = CommitSpec(ref=source.ref, url=source.url, checksum="", secrets=RHSM_SECRETS if source.rhsm else "")
    if not source.url:
        return commit
    parsed = urllib.parse.urlsplit(source.url)
    if parsed.scheme not in ("http", "https"):
        raise OSTreeResolveError(f"error parsing ostree repository location: unsupported scheme in {source.url!r}")
    url = source.url.rstrip("/") + "/refs/heads/" + source.ref
    context = None
    if source.rhsm and parsed.scheme == "https":
        context = _entitlement_context(entitlement_dir)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310 (http/https only)
            body = resp.read(4096)
    except urllib.error.HTTPError as exc:
        raise OSTreeResolveError(f"ostree repository {url!r} returned status: {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise OSTreeResolveError(f"error sending request to ostree repository {url!r}: {exc}") from exc
    checksum = body.decode(errors="replace").strip()
    if not _CHECKSUM_RE.match(checksum):
        raise OSTreeResolveError(f"ostree repository {url!r} returned invalid reference")
    return CommitSpec(ref=commit.ref, url=commit.url, checksum=checksum, secrets=commit.secrets)


def _entitlement_context(directory: str) -> Any:
    import glob
    import ssl

    keys = sorted(glob.glob(f"{directory}/*-key.pem"))
    if not keys:
        raise OSTreeResolveError("error adding rhsm certificates when resolving ref")
    key = keys[0]
    context = ssl.create_default_context()
    context.load_cert_chain(key.replace("-key.pem", ".pem"), key)
    return context


def prepare_compose(
    image_type: Any,
    blueprint: Mapping[str, Any],
    ostree_request: Mapping[str, Any] | None,
    *,
    test: bool = False,
    resolver: Any = None,
) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """What POST /compose does for ostree before queueing, as osbuild-composer does it there:
    check the request against the image type, then resolve the commits it needs (stand-ins in
    test mode). Returns (warnings, ostree_commits for the manifest options)."""
    options = {"ostree": dict(ostree_request or {})}
    warnings = image_type.check(blueprint, options)
    resolve = resolver or resolve_commit
    commits: dict[str, list[dict[str, str]]] = {}
    for pipeline, sources in image_type.ostree_sources(blueprint, options).items():
        commits[pipeline] = [(test_commit(s) if test else resolve(s)).to_dict() for s in sources]
    return warnings, commits


def prepare_containers(
    blueprint: Mapping[str, Any], *, arch: str = "x86_64", test: bool = False, resolver: Any = None
) -> dict[str, list[dict[str, Any]]]:
    """The blueprint's `[[containers]]` resolved for the `os` pipeline (manifest option `containers`).

    Test-mode composes get stand-ins derived from the source; otherwise each image is looked up in
    its registry (`resolver(entry) -> spec dict`, default distros.registry.resolve_container).
    """
    entries = [dict(c) for c in blueprint.get("containers") or [] if c.get("source")]
    if not entries:
        return {}
    resolve = resolver or functools.partial(resolve_container, arch=arch)
    specs = []
    for entry in entries:
        if test:
            digest = "sha256:" + hashlib.sha256(("digest:" + entry["source"]).encode()).hexdigest()
            image_id = "sha256:" + hashlib.sha256(("image:" + entry["source"]).encode()).hexdigest()
            specs.append({"Source": entry["source"], "Digest": digest, "ImageID": image_id,
                          "LocalName": entry.get("name") or entry["source"], "TLSVerify": entry.get("tls-verify")})
        else:
            specs.append(resolve(entry))
    return {"os": specs}


def prepare_flatpaks(
    image_type: Any,
    blueprint: Mapping[str, Any],
    ostree_request: Mapping[str, Any] | None,
    *,
    test: bool = False,
    resolver: Any = None,
) -> dict[str, list[dict[str, Any]]]:
    """The Flatpaks the image type embeds, resolved per pipeline (manifest option `flatpaks`).

    Each reference is looked up in its registry's Flatpak index and its image resolved
    (`resolver(sources) -> [spec dict]`, default distros.flatpaks.resolve_all); test-mode composes
    get stand-ins derived from the reference, as images' mock resolver makes them.
    """
    from distros import flatpaks, manifestmock

    options = {"ostree": dict(ostree_request or {})}
    resolve = resolver or flatpaks.resolve_all
    out: dict[str, list[dict[str, Any]]] = {}
    for pipeline, sources in image_type.flatpak_sources(dict(blueprint), options).items():
        if test:
            out[pipeline] = [manifestmock.resolve_flatpak(s.url, s.ref, s.remote_name) for s in sources]
        else:
            out[pipeline] = list(resolve(sources))
    return out
