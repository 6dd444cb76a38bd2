"""The engine: resolved definitions + blueprint + depsolved packages -> osbuild manifest (v2).

An image type is a list of pipelines in the data, each `{name: ..., kind: ...}` plus kind-specific
keys.  A *pipeline kind* is a class registered here with `@pipeline_kind("name")`; the engine calls,
for every pipeline of the image type, in order:

- `package_sets(ctx, spec)` -> the depsolve chain of that pipeline (list of PackageSet dicts), or
  `None` when the pipeline installs no RPMs of its own;
- `build_needs(ctx, spec)` -> (extra build-root packages, SELinux labels the build root needs);
- `serialize(ctx, spec)` -> the pipeline dict of the manifest.

How to add an image type: add an entry under `image_types:` in the distro family's YAML
(`distros/defs/<family>.yaml`) with `filename`, `mime_type`, `arches`, `pipelines`, `exports`,
`package_sets`, `image_config` and, when bootable, `partition_table` (a name under
`partition_tables:`).  Conditions on distro/version/arch are written in the data.

How to add a pipeline kind (e.g. an anaconda tree, an ostree commit, an ISO): write a subclass of
`PipelineKind` in its own module, decorate it with `@pipeline_kind("my-kind")`, import the module
from `distros/pipelines/__init__` (or anywhere before use), and reference `kind: my-kind` from the
data.  A kind reads what it needs from `ManifestContext` (packages of its pipeline, the OS config,
the partition table, options such as ostree commits) and may put files into `ctx.inline_sources`
or ostree/container items into `ctx.extra_sources`; the engine writes the `sources` section.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distros.customizations import OSConfig, os_config
from distros.definitions import DefinitionError, DistroDef, parse_size
from distros.gorand import GoRand
from distros.partition import NEW_MOUNTPOINT_FS, PartitionTable, customized

PIPELINE_KINDS: dict[str, "PipelineKind"] = {}


def pipeline_kind(name: str) -> Callable[[type], type]:
    def register(cls: type) -> type:
        PIPELINE_KINDS[name] = cls()
        return cls
    return register


class PipelineKind:
    """Base of the pipeline builders selected by `kind:` in the data."""

    # keys this kind reads from its pipeline entry beyond the built-in kinds' (distros/schema.py
    # PIPELINE); the definitions loader refuses any other key
    spec_keys: frozenset[str] = frozenset()

    def package_sets(self, ctx: "ManifestContext", spec: dict[str, Any]) -> list[dict[str, Any]] | None:
        return None

    def build_needs(self, ctx: "ManifestContext", spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return [], {}

    def serialize(self, ctx: "ManifestContext", spec: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def ostree_sources(self, ctx: "ManifestContext", spec: dict[str, Any]) -> list[Any]:
        """ostree commits (distros.ostree.SourceSpec) the compose must resolve for this pipeline."""
        return []

    def flatpak_sources(self, ctx: "ManifestContext", spec: dict[str, Any]) -> list[Any]:
        """Flatpak references (distros.flatpaks.FlatpakSource) the compose must resolve for this pipeline."""
        return []


@dataclass
class ManifestOptions:
    """Per-compose knobs beyond the blueprint (the Weldr compose request's extras)."""

    size: int = 0                           # requested image size in bytes; 0 = default
    partitioning_mode: str = "auto-lvm"
    api_type: str = "weldr"                 # written into RHSM facts on RHEL
    ostree: dict[str, Any] = field(default_factory=dict)          # ref/url/parent (installers)
    ostree_commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    containers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # per pipeline, the resolved Flatpak images (container spec dicts, Go field names)
    flatpaks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # blueprint files may name a file of this host by URI (images' command-line tools and its
    # test manifests); off for the service, whose clients must not read the build host's files
    local_file_uris: bool = False

    @classmethod
    def from_any(cls, options: "ManifestOptions | dict[str, Any] | None") -> "ManifestOptions":
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        assert isinstance(options, dict)
        known = {k: v for k, v in options.items() if k in cls.__dataclass_fields__}
        if "size" in known:
            known["size"] = int(known["size"] or 0)
        return cls(**known)


@dataclass
class ManifestContext:
    distro: DistroDef
    arch: str
    image_type: "ImageTypeDef"
    blueprint: dict[str, Any]
    options: ManifestOptions
    os: OSConfig
    rng: GoRand                 # images' identifiers: Go's math/rand, seeded per compose
    packages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # per pipeline, the depsolve transactions when the caller kept them apart (osbuild/images
    # writes one rpm stage per transaction); absent: one rpm stage with all `packages`
    transactions: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    repositories: list[dict[str, Any]] = field(default_factory=list)
    partition_table: PartitionTable | None = None
    inline_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return self.image_type.data

    def repositories_for(self, pipeline: str) -> list[dict[str, Any]]:
        """Repositories may be limited to some pipelines with `package_sets`."""
        return [r for r in self.repositories
                if not r.get("package_sets") or pipeline in r["package_sets"]]

    def gpgkeys_for(self, pipeline: str) -> list[str]:
        """The armored keys the pipeline's rpm stage imports: osbuild/images dedups and sorts them
        (`pkg/osbuild/rpm_stage.go` GPGKeysForPackages: two repositories with one key give it once);
        July-2023 releases keep osbuild-composer's list, one entry per repository key."""
        keys: list[str] = []
        for repo in self.repositories_for(pipeline):
            found = repo.get("gpgkeys") or ([repo["gpgkey"]] if repo.get("gpgkey") else [])
            keys.extend(k for k in found if k.lstrip().startswith("-----BEGIN"))
        if self.distro.follows == "osbuild-composer-2023":
            return keys
        return sorted(set(keys))

    def rpm_stages(self, pipeline: str, **options: Any) -> list[dict[str, Any]]:
        """The pipeline's rpm stages.  With transactions, one per non-empty transaction as
        osbuild/images writes them (`GenRPMStagesFromTransactions`): each imports the keys of the
        repositories its signature-checked packages come from (deduplicated, sorted) and the
        `gpgkeys.fromtree` files the first transaction providing them installs."""
        from distros.stages import rpm_stage

        rpmkeys = self.distro.rpmkeys
        if rpmkeys and self.distro.follows == "images":
            is_build = any(p["name"] == pipeline and p["kind"] == "build" for p in self.image_type.pipelines)
            if is_build and rpmkeys.get("ignore_build_import_failures"):
                options.setdefault("rpmkeys", {"ignore_import_failures": True})
            elif not is_build and rpmkeys.get("binary_path"):
                options.setdefault("rpmkeys", {"bin_path": rpmkeys["binary_path"]})
        transactions = self.transactions.get(pipeline)
        if transactions is None:
            return [rpm_stage(self.packages.get(pipeline, []), self.gpgkeys_for(pipeline), **options)]
        repos = {str(r["id"]): r for r in self.repositories if r.get("id")}
        from_tree = list(options.pop("gpgkeys.fromtree", None) or [])
        provided_in: dict[str, int] = {}
        for idx, tx in enumerate(transactions):
            for pkg in tx:
                for path in pkg.get("files") or []:
                    provided_in.setdefault(path, idx)
        stages = []
        for idx, tx in enumerate(transactions):
            if not tx:
                continue
            keys: set[str] = set()
            for pkg in tx:
                if pkg.get("check_gpg"):
                    repo = repos.get(str(pkg.get("repo_id"))) or {}
                    keys.update(repo.get("gpgkeys") or ([repo["gpgkey"]] if repo.get("gpgkey") else []))
            tx_options = dict(options)
            tree_keys = [k for k in from_tree if provided_in.get(k, 0) == idx]
            if tree_keys:
                tx_options["gpgkeys.fromtree"] = tree_keys
            stages.append(rpm_stage(tx, sorted(keys), **tx_options))
        return stages

    def kernel_package(self, pipeline: str = "os") -> dict[str, Any] | None:
        for pkg in self.packages.get(pipeline, []):
            if pkg["name"] == self.os.kernel_name:
                return pkg
        return None

    def kernel_version(self, pipeline: str = "os") -> str:
        pkg = self.kernel_package(pipeline)
        if pkg is None:
            return ""
        return f"{pkg['version']}-{pkg['release']}.{pkg['arch']}"


@dataclass
class ImageTypeDef:
    """An image type resolved for one (distro, arch)."""

    name: str
    distro: DistroDef
    arch: str
    data: dict[str, Any]
    partition_tables: dict[str, Any]

    @property
    def filename(self) -> str:
        return self.data["filename"]

    @property
    def mime_type(self) -> str:
        return self.data.get("mime_type", "application/octet-stream")

    @property
    def default_size(self) -> int:
        return parse_size(self.data.get("default_size", 0))

    @property
    def exports(self) -> list[str]:
        return list(self.data["exports"])

    @property
    def bootable(self) -> bool:
        return bool(self.data.get("bootable", False))

    @property
    def pipelines(self) -> list[dict[str, Any]]:
        return list(self.data["pipelines"])

    def image_config(self) -> dict[str, Any]:
        from distros.definitions import Target, resolve

        # the release-wide defaults may carry conditions too (resolved here, per arch)
        target = Target(self.distro.family, self.distro.version, self.arch)
        merged = dict(resolve(self.distro.image_config, target))
        merged.update(self.data.get("image_config") or {})
        return _substitute(merged, {"{os_version}": self.distro.os_version,
                                    "{release_version}": self.distro.release_version})

    def base_partition_table(self) -> PartitionTable | None:
        name = self.data.get("partition_table")
        if not name:
            return None
        tables = self.partition_tables.get(name)
        if tables is None:
            raise DefinitionError(f"{self.name}: unknown partition table {name!r}")
        table = tables.get(self.arch) if "partitions" not in tables else tables
        if table is None:
            raise DefinitionError(f"{self.name}: no partition table {name!r} for {self.arch}")
        pt = PartitionTable.from_def(table, self.distro.default_fs_type)
        if self.distro.follows == "images":
            # osbuild/images' tables fix only the table's identifier; partitions and filesystems
            # get theirs from the seeded generator (osbuild-composer's 2023 tables fixed more)
            pt.forget_payload_identifiers()
        return pt

    # --- the public operations -------------------------------------------------------------
    def context(self, blueprint: dict[str, Any] | None, options: Any, seed: int) -> ManifestContext:
        from distros.partition import check_mountpoints

        bp = blueprint or {}
        # osbuild-composer applies its mountpoint policy to every image type, disk or not
        check_mountpoints(bp_customizations(bp).get("filesystem") or [], today=self.distro.follows == "images")
        # UUIDs, FAT serials and MAC addresses come from Go's math/rand as osbuild/images draws
        # them; password salts (crypto/rand in images) from a generator of their own
        rng = GoRand(seed)
        opts = ManifestOptions.from_any(options)
        os_cfg = os_config(self.image_config(), bp, random.Random(seed), self.distro.follows,
                           ostree=bool(self.data.get("rpm_ostree")), local_file_uris=opts.local_file_uris)
        if ((bp_customizations(bp).get("dnf") or {}).get("config") or {}).get("set_releasever"):
            # the blueprint ties dnf to this minor release (images' DNF customization: UpdateVar)
            dnf = dict(os_cfg.stages.get("dnf_config") or {})
            variables = [v for v in dnf.get("variables") or [] if v.get("name") != "releasever"]
            dnf["variables"] = variables + [{"name": "releasever", "value": self.distro.os_version}]
            os_cfg.stages["dnf_config"] = dnf
        return ManifestContext(distro=self.distro, arch=self.arch, image_type=self, blueprint=bp, options=opts,
                               os=os_cfg, rng=rng)

    def image_size(self, ctx: ManifestContext) -> int:
        from distros.partition import fs_min_size

        size = ctx.options.size or self.default_size
        # some clouds want whole units (Azure: MiB)
        align = parse_size(self.data.get("size_align", 0))
        if align and size % align:
            size = (size // align + 1) * align
        total = sum(fs_min_size(f) for f in (bp_customizations(ctx.blueprint).get("filesystem") or []))
        return max(size, total)

    def check(self, blueprint: dict[str, Any] | None, options: Any = None) -> list[str]:
        """osbuild-composer's checks of a request against the image type: warnings, or
        distros.ostree.OSTreeOptionsError (Weldr `ManifestCreationFailed`)."""
        from distros.ostree import OSTreeOptions, RequestRules, check_options

        bp = blueprint or {}
        opts = ManifestOptions.from_any(options)
        warnings = check_options(type_name=self.name, rpm_ostree=bool(self.data.get("rpm_ostree")),
                                 boot_iso=bool(self.data.get("boot_iso")),
                                 options=OSTreeOptions.from_request(opts.ostree),
                                 customizations=bp_customizations(bp),
                                 has_containers=bool(bp.get("containers")), distro_name=self.distro.name,
                                 rules=RequestRules.from_data(self.data.get("request_rules")),
                                 today=self.distro.follows == "images")
        # mountpoint and path policies, partitioning (distros.errors.RequestError subclasses)
        self._prepare_disk(self.context(bp, options, seed=0))
        return warnings

    def ostree_sources(self, blueprint: dict[str, Any] | None, options: Any = None) -> dict[str, list[Any]]:
        """Per pipeline, the ostree commits to resolve before `manifest` (pass the resolved
        CommitSpec dicts back as options `ostree_commits`)."""
        ctx = self.context(blueprint, options, seed=0)
        return self._per_pipeline(lambda spec: kind_of(spec).ostree_sources(ctx, spec))

    def flatpak_sources(self, blueprint: dict[str, Any] | None, options: Any = None) -> dict[str, list[Any]]:
        """Per pipeline, the Flatpak references to resolve before `manifest` (pass the resolved
        container spec dicts back as options `flatpaks`)."""
        ctx = self.context(blueprint, options, seed=0)
        return self._per_pipeline(lambda spec: kind_of(spec).flatpak_sources(ctx, spec))

    def _per_pipeline(self, sources: Callable[[dict[str, Any]], list[Any]]) -> dict[str, list[Any]]:
        """What `sources` finds for each pipeline spec, keyed by pipeline name; empty ones left out."""
        out: dict[str, list[Any]] = {}
        for spec in self.pipelines:
            found = sources(spec)
            if found:
                out[spec["name"]] = found
        return out

    def package_sets(self, blueprint: dict[str, Any] | None, options: Any = None) -> dict[str, list[dict[str, Any]]]:
        self.check(blueprint, options)
        ctx = self.context(blueprint, options, seed=0)
        self._prepare_disk(ctx)
        sets: dict[str, list[dict[str, Any]]] = {}
        for spec in self.pipelines:
            chain = kind_of(spec).package_sets(ctx, spec)
            if chain is not None:
                sets[spec["name"]] = chain
        return sets

    def manifest(self, blueprint: dict[str, Any] | None, packages: dict[str, list[Any]],
                 repositories: list[dict[str, Any]], options: Any = None, seed: int = 0) -> dict[str, Any]:
        self.check(blueprint, options)
        ctx = self.context(blueprint, options, seed)
        for pipeline, pkgs in packages.items():
            if pkgs and isinstance(pkgs[0], list):
                # transactions kept apart: the pipeline installs all of them (images' AllPackages)
                ctx.transactions[pipeline] = pkgs
                packages = dict(packages)
                packages[pipeline] = [p for tx in pkgs for p in tx]
        ctx.packages = packages
        ctx.repositories = list(repositories)
        self._prepare_disk(ctx)
        from distros.fieldorder import order_manifest

        # a kind may leave its pipeline out for this release (e.g. no rootfs-image for a squashfs root)
        pipelines = [p for p in (kind_of(spec).serialize(ctx, spec) for spec in self.pipelines) if p is not None]
        # stage options in osbuild/images' field order (the bytes of a manifest are compared)
        return order_manifest({"version": "2", "pipelines": pipelines, "sources": sources(ctx)})

    def _prepare_disk(self, ctx: ManifestContext) -> None:
        base = self.base_partition_table()
        if base is None:
            return
        base.names_2023 = self.distro.follows == "osbuild-composer-2023"
        custom = bp_customizations(ctx.blueprint)
        filesystems = custom.get("filesystem") or []
        required = self.data.get("required_sizes")
        required_bytes = {k: parse_size(v) for k, v in required.items()} if required is not None else None
        if custom.get("disk"):
            # the blueprint designs the whole disk; the platform adds what booting needs
            from distros.partition import PartitioningError, from_blueprint_disk, laid_out

            if filesystems:
                raise PartitioningError("the disk and filesystem customizations cannot be used together")
            from distros.pipelines.os_tree import platform

            plat = platform(ctx)
            table = from_blueprint_disk(custom["disk"], bios=str(plat.get("bios") or ""), uefi=bool(plat.get("uefi")),
                                        default_fs_type=self.distro.default_fs_type, arch=self.arch,
                                        base_type=base.type)
            table.names_2023 = base.names_2023
            # images lays the table out to the disk's own minsize; a size in the request replaces it
            from distros.partition import fs_min_size

            disk_size = self.image_size(ctx) if ctx.options.size else fs_min_size(custom["disk"])
            ctx.partition_table = laid_out(table, disk_size, required_bytes, ctx.rng)
            return
        # newer blueprints choose the mode themselves; the request's option is the fallback
        mode = custom.get("partitioning_mode") or ctx.options.partitioning_mode
        # images formats what the blueprint adds with the distribution's default filesystem type
        # (NewPartitionTable's defaultFs), osbuild-composer 2023 always with XFS
        today = self.distro.follows == "images"
        ctx.partition_table = customized(base, filesystems, self.image_size(ctx), mode,
                                         required_bytes, ctx.rng, today=today,
                                         new_fs_type=self.distro.default_fs_type if today else NEW_MOUNTPOINT_FS)


def _substitute(node: Any, values: dict[str, str]) -> Any:
    """Release facts inside image config strings (e.g. a DNF `releasever` pinned to the minor)."""
    if isinstance(node, str):
        for key, value in values.items():
            node = node.replace(key, value)
        return node
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    return node


def bp_customizations(blueprint: dict[str, Any]) -> dict[str, Any]:
    return blueprint.get("customizations") or {}


def kind_of(spec: dict[str, Any]) -> PipelineKind:
    # the builders register themselves on import
    import distros.pipelines  # noqa: F401

    try:
        return PIPELINE_KINDS[spec["kind"]]
    except KeyError:
        raise DefinitionError(f"unknown pipeline kind {spec.get('kind')!r}") from None


def sources(ctx: ManifestContext) -> dict[str, Any]:
    # packages of subscription (RHSM) repositories are fetched with the host's entitlement
    rhsm_repos = {str(r.get("id") or r.get("name")) for r in ctx.repositories if r.get("rhsm")}
    curl: dict[str, Any] = {}
    for pkgs in ctx.packages.values():
        for pkg in pkgs:
            item: dict[str, Any] = {"url": pkg["remote_location"]}
            secrets = pkg.get("secrets") or ("org.osbuild.rhsm" if pkg.get("repo_id") in rhsm_repos else "")
            if secrets:
                item["secrets"] = {"name": secrets}
            curl[pkg["checksum"]] = item
    out: dict[str, Any] = {}
    if curl:
        out["org.osbuild.curl"] = {"items": dict(sorted(curl.items()))}
    if ctx.inline_sources:
        out["org.osbuild.inline"] = {"items": dict(sorted(ctx.inline_sources.items()))}
    for name, items in ctx.extra_sources.items():
        # (curl items of local files join the packages')
        merged = {**(out.get(name) or {}).get("items", {}), **items}
        out[name] = {"items": dict(sorted(merged.items()))}
    return out
