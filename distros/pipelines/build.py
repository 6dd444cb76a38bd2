"""The `build` pipeline: the build root the other pipelines' stages run in."""

from __future__ import annotations

from typing import Any

from distros.engine import ManifestContext, PipelineKind, kind_of, pipeline_kind
from distros.stages import selinux_stage

INSTALL_EXEC = "system_u:object_r:install_exec_t:s0"
PACKAGE_LABELS = {"coreutils": "/usr/bin/cp", "tar": "/usr/bin/tar"}


def build_ref(ctx: ManifestContext) -> dict[str, str]:
    """The `build` key of a pipeline: none when the host is the build root (test distro)."""
    if ctx.distro.host_build_root:
        return {}
    return {"build": "name:build"}


@pipeline_kind("build")
class BuildRoot(PipelineKind):
    def _needs(self, ctx: ManifestContext) -> tuple[list[str], dict[str, str]]:
        packages: list[str] = []
        labels = {"/usr/bin/cp": INSTALL_EXEC}
        for spec in ctx.image_type.pipelines:
            if spec["kind"] == "build":
                continue
            pkgs, lbls = kind_of(spec).build_needs(ctx, spec)
            packages += [p for p in pkgs if p not in packages]
            labels.update(lbls)
        return packages, dict(sorted(labels.items()))

    def package_sets(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
        if ctx.distro.host_build_root:
            return None
        if ctx.distro.follows == "images":
            # osbuild/images' BuildrootFromPackages: the policy, cp and xz, the runner's packages,
            # then every other pipeline's tools, concatenated as they come (duplicates included)
            tools = [f"selinux-policy-{ctx.os.selinux or 'targeted'}", "coreutils", "xz",
                     *(ctx.distro.runner_build_packages or ctx.distro.build_packages)]
            for other in ctx.image_type.pipelines:
                if other["kind"] != "build":
                    tools += kind_of(other).build_needs(ctx, other)[0]
            return [{"include": tools, "exclude": [], "install_weak_deps": True}]
        include: list[str] = []
        for name in list(ctx.distro.build_packages) + list(ctx.data.get("build_packages") or []) + self._needs(ctx)[0]:
            if name not in include:
                include.append(name)
        return [{"include": sorted(include), "exclude": [], "install_weak_deps": True}]

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec["name"]
        labels = dict(self._needs(ctx)[1])
        # the build root's own copies of cp and tar may write any label: whenever the depsolved
        # build root has them (also as a dependency), as osbuild-composer decides it
        installed = {pkg["name"] for pkg in ctx.packages.get(name, [])}
        labels.update({path: INSTALL_EXEC for pkg, path in PACKAGE_LABELS.items() if pkg in installed})
        stages = [*ctx.rpm_stages(name),
                  selinux_stage(labels=dict(sorted(labels.items())))]
        return {"name": name, "runner": ctx.distro.runner, "stages": stages}
