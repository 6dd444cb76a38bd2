"""A Weldr compose request checked and resolved into what the compose store records.

POST /compose does a lot before anything is stored — the blueprint, its distro and arch, the
image type (aliases resolved), the image type's own checks, ostree commits and containers resolved
now, upload settings — and every refusal must leave the store untouched. Keeping that here, free
of Flask, lets it be tested without a server and keeps the route to parse, prepare, store, reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.params import check_blueprint_name, host_arch
from core.db import Database
from core.errors import WeldrError
from distros import offered


@dataclass
class PreparedCompose:
    """Everything `ComposeStore.create` needs, plus the warnings the reply carries."""

    blueprint: dict[str, Any]
    compose_type: str          # the image type's canonical name
    distro: str
    arch: str
    size: int                  # the image size: requested, or the type's default
    image_filename: str
    mime_type: str
    ostree: dict[str, Any]
    upload_requests: list[dict[str, Any]]
    test_mode: int
    options: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def store_arguments(self) -> dict[str, Any]:
        return {"blueprint": self.blueprint, "compose_type": self.compose_type,
                "distro": self.distro, "arch": self.arch, "size": self.size,
                "image_filename": self.image_filename, "mime_type": self.mime_type,
                "ostree": self.ostree, "upload_requests": self.upload_requests,
                "test_mode": self.test_mode, "options": self.options}


def distro_for(name: str, arch: str) -> Any:
    """The distro definition, or osbuild-composer's DistroError."""
    try:
        import distros
    except ImportError as exc:
        raise WeldrError("DistroError", f"Unknown distribution: {name}") from exc
    try:
        d = distros.get_distro(name)
    except (LookupError, KeyError) as exc:
        raise WeldrError("DistroError", f"Unknown distribution: {name} for arch {arch}") from exc
    if arch not in d.arches():
        raise WeldrError("DistroError", f"Unknown distribution: {name} for arch {arch}")
    return d


def image_type_for(distro: str, arch: str, compose_type: str) -> Any:
    """The image type by name or alias, or osbuild-composer's ComposeError."""
    d = distro_for(distro, arch)
    try:
        return d.image_type(arch, compose_type)
    except (LookupError, KeyError) as exc:
        raise WeldrError("ComposeError", f'Failed to get compose type "{compose_type}": '
                         f"invalid image type: {compose_type}") from exc


def committed_blueprint(db: Database, name: str) -> dict[str, Any] | None:
    """The committed blueprint; a damaged record becomes its own Weldr error."""
    from core.store import blueprints

    try:
        return blueprints.get_committed(db, name)
    except Exception as exc:  # DamagedBlueprint carries its Weldr id and message
        error_id = getattr(exc, "error_id", None)
        if error_id is None:
            raise
        raise WeldrError(error_id, getattr(exc, "msg", str(exc)),
                         getattr(exc, "http_status", 400)) from exc


def prepare(body: dict[str, Any], *, config: Any, db: Database, api_version: int,
            test_mode: int) -> PreparedCompose:
    """Check a POST /compose body and resolve what the compose needs; raises WeldrError.

    Nothing is stored here: a refusal at any step changes nothing.
    """
    name = body.get("blueprint_name")
    name = name if isinstance(name, str) else ""
    check_blueprint_name(name)
    compose_type = body.get("compose_type")
    compose_type = compose_type if isinstance(compose_type, str) else ""
    size = body.get("size", 0) or 0
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise WeldrError("ComposeError", f"Invalid size: {size!r}")
    ostree = body.get("ostree") or {}
    if not isinstance(ostree, dict):
        raise WeldrError("ComposeError", "Invalid ostree options")
    blueprint = committed_blueprint(db, name)
    if blueprint is None:
        raise WeldrError("UnknownBlueprint", f"Unknown blueprint name: {name}")
    # an alias (rhel-9) builds its target release (the blueprint keeps the alias)
    distro = offered.resolve_distro(config, blueprint.get("distro") or "") or offered.default_distro(config)
    arch = blueprint.get("architecture") or host_arch()
    if distro not in offered.list_distros(config):
        raise WeldrError("DistroError", f"Unknown distribution: {distro} for arch {arch}")
    image_type = image_type_for(distro, arch, compose_type)

    from distros.errors import RequestError
    from distros.inputs import prepare_compose, prepare_containers, prepare_flatpaks

    try:  # the image type's checks, then the ostree commits, containers and flatpaks it needs, resolved now
        warnings, ostree_commits = prepare_compose(image_type, blueprint, ostree, test=test_mode != 0)
        containers = prepare_containers(blueprint, arch=arch, test=test_mode != 0)
        flatpaks = prepare_flatpaks(image_type, blueprint, ostree, test=test_mode != 0)
    except RequestError as exc:  # blueprint/options the image type refuses, unresolvable inputs
        raise WeldrError(exc.api_id, exc.api_message, exc.http_status) from exc

    upload_requests = []
    if api_version >= 1 and body.get("upload"):
        upload = body["upload"]
        if not isinstance(upload, dict):
            raise WeldrError("UploadError", "'upload' must be an object")
        from uploaders.service import validate_upload_request

        # a test compose uploads nothing: its settings are not checked (osbuild-composer checks
        # them nowhere; composer-cli's own suite sends placeholders such as "AWS Region")
        upload_requests.append(validate_upload_request(upload, image_type.name, config, db,
                                                       check_values=test_mode == 0))

    options: dict[str, Any] = {"requested_size": size}
    if ostree_commits:
        options["ostree_commits"] = ostree_commits
    if containers:
        options["containers"] = containers
    if flatpaks:
        options["flatpaks"] = flatpaks
    return PreparedCompose(
        blueprint=blueprint, compose_type=image_type.name,  # an alias is stored by its type's name
        distro=distro, arch=arch, size=max(size, getattr(image_type, "default_size", 0) or 0),
        image_filename=getattr(image_type, "filename", "") or "",
        mime_type=getattr(image_type, "mime_type", "") or "application/octet-stream",
        ostree=ostree, upload_requests=upload_requests, test_mode=test_mode, options=options,
        warnings=list(warnings or []))
