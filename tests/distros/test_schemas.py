"""Every manifest the project can generate validates against osbuild's own schemas.

Each distro × arch × image type is generated with an empty and with a heavily customized
blueprint on fixed fake packages, then checked against the manifest schema and against each
stage's, input's, device's, mount's and source's `schema_2`/`schema` from ../shared (skipped when
that folder is absent).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import distros
from tests.distros.conftest import SCHEMA_DIR

# a real certificate (the test CA of osbuild/images' test configurations; serial 27894af8…)
TEST_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDszCCApugAwIBAgIUJ4lK+JfdJCNgcEVxZDinJfKKbQswDQYJKoZIhvcNAQEL\n"
    "BQAwaDELMAkGA1UEBhMCVVMxFzAVBgNVBAgMDk5vcnRoIENhcm9saW5hMRAwDgYD\n"
    "VQQHDAdSYWxlaWdoMRAwDgYDVQQKDAdSZWQgSGF0MRwwGgYDVQQDDBNUZXN0IENB\n"
    "IGZvciBvc2J1aWxkMCAXDTI0MDkwMzEzMjkyMFoYDzIyOTgwNjE4MTMyOTIwWjBo\n"
    "MQswCQYDVQQGEwJVUzEXMBUGA1UECAwOTm9ydGggQ2Fyb2xpbmExEDAOBgNVBAcM\n"
    "B1JhbGVpZ2gxEDAOBgNVBAoMB1JlZCBIYXQxHDAaBgNVBAMME1Rlc3QgQ0EgZm9y\n"
    "IG9zYnVpbGQwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDeA7OcWTrV\n"
    "gstoBsUaeJKm8nelg7Lc0WNXH6yOTLsr4td4yHs0YOvFGwgSf+ffV3RAG1mgqnMG\n"
    "MgkD2+z+7QhHbHHs3y0d0zfhA2bg0KVvfCWk7fNRPHY0UOePpXk245Bfw3D0VTpl\n"
    "F7nePk1I7ZY09snPWUeb2rjKXzYjKjzM0h27+ykV8I8+FbdyPk/pR8whyDqtHLUa\n"
    "XfFy2TFloDSYMkHKVd38BnL0bj91x5F+KsZkN4HzfbYwxLbCQfOSgy7q6TWce9kq\n"
    "Lo6tya9vuvpWFm1dye7L+BodAQAq/dI/JMeCfyTb0eFb+tyzfr5aVIoqqDN+p9ft\n"
    "cw4OefpHbhtNAgMBAAGjUzBRMB0GA1UdDgQWBBRV2A9YmusekPzu5Yf08cV0oPL1\n"
    "wjAfBgNVHSMEGDAWgBRV2A9YmusekPzu5Yf08cV0oPL1wjAPBgNVHRMBAf8EBTAD\n"
    "AQH/MA0GCSqGSIb3DQEBCwUAA4IBAQCgQZ2Xfj+NxaKBZgn2KNxS0MTbhzHRz6Rn\n"
    "qJs+h8OUz2Crmaf6N+RHlmDRZXUrDjSHpxVT2LxFy7ofRrLYIezFDUYfb920VkkV\n"
    "SVcxh1YDFROJalfMoE6wdyR/LnK4MJZS9fUpeCJJc/A0J+9FK9CwcyUrHgJ8XbJh\n"
    "MKYyQ+cf6O7wzutuBpMyRqSKS+hVM7BQTmSFvv1eAJlo6klGAmmKiYmAEvcQadH1\n"
    "djrujsA3Cn5vX2L+0yuiLB5/zoxqx5cEy97TuKUYB8OqMMujAXNzF4L3HJDUNba2\n"
    "AhEkFozMXwYX73TGbGZ0mawPS5D3v3tYTEmJFf6SnVCmUW1fs57g\n"
    "-----END CERTIFICATE-----\n"
)

CUSTOM_BLUEPRINT: dict[str, Any] = {
    "name": "everything",
    "packages": [{"name": "tmux", "version": "*"}],
    "groups": [{"name": "core"}],
    "customizations": {
        "hostname": "schema-host",
        "kernel": {"append": "debug"},
        "sshkey": [{"user": "root", "key": "ssh-ed25519 AAAA test"}],
        "user": [{"name": "alice", "password": "$6$salt$hash", "key": "ssh-ed25519 AAAA alice",
                  "home": "/home/alice", "shell": "/bin/bash", "groups": ["wheel"], "uid": 1200, "gid": 1200}],
        "group": [{"name": "alice", "gid": 1200}],
        "timezone": {"timezone": "Europe/Prague", "ntpservers": ["ntp.example.com"]},
        "locale": {"languages": ["cs_CZ.UTF-8"], "keyboard": "cz"},
        "firewall": {"ports": ["22:tcp", "8080:tcp"], "services": {"enabled": ["http"], "disabled": ["telnet"]}},
        "services": {"enabled": ["sshd"], "disabled": ["kdump"], "masked": ["rpcbind"]},
        "filesystem": [{"mountpoint": "/var", "minsize": 2147483648}, {"mountpoint": "/", "minsize": 4294967296}],
        "directories": [{"path": "/etc/example", "mode": "0750", "user": "root", "group": "root",
                         "ensure_parents": True}],
        "files": [{"path": "/etc/example/file.conf", "data": "x=1\n", "mode": "0640"}],
        "repositories": [{"id": "extra", "baseurls": ["https://example.com/repo"], "gpgcheck": True,
                          "gpgkeys": ["-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n"]}],
        "openscap": {"profile_id": "xccdf_org.ssgproject.content_profile_cis",
                     "tailoring": {"selected": ["rule_a"], "unselected": ["rule_b"]}},
        "fips": True,
        "rhsm": {"config": {"dnf_plugins": {"product_id": {"enabled": True}},
                            "subscription_manager": {"rhsm": {"manage_repos": True},
                                                     "rhsmcertd": {"auto_registration": False}}}},
        "cacerts": {"pem_certs": [TEST_CA]},
        "rpm": {"import_keys": {"files": ["/etc/pki/rpm-gpg/RPM-GPG-KEY-extra"]}},
    },
}

SIMPLIFIED_CUSTOMIZED: dict[str, Any] = {
    "name": "simplified",
    "customizations": {
        "installation_device": "/dev/vda",
        "user": [{"name": "alice", "password": "$6$salt$hash", "key": "ssh-ed25519 AAAA alice", "groups": ["wheel"]}],
        "kernel": {"append": "debug"},
        "fdo": {"manufacturing_server_url": "http://fdo.example.com:8080", "diun_pub_key_root_certs": "CERTS"},
        "ignition": {"embedded": {"config": "eyJpZ25pdGlvbiI6IHsidmVyc2lvbiI6ICIzLjMuMCJ9fQ=="}},
    },
}

REPOS = [{"name": "base", "baseurl": "https://example.com/base",
          "gpgkey": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nkey\n-----END PGP PUBLIC KEY BLOCK-----\n",
          "check_gpg": True}]


def fake_packages(arch: str, pipelines: list[str]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for i, name in enumerate(pipelines):
        pkgs = []
        for j, pkg in enumerate(["kernel", "kernel-core", "bash", "systemd"]):
            digest = f"{i:02x}{j:02x}".ljust(64, "0")
            pkgs.append({"name": pkg, "epoch": 0, "version": "6.1.0", "release": "1.test", "arch": arch,
                         "remote_location": f"https://example.com/{pkg}.rpm", "checksum": f"sha256:{digest}",
                         "check_gpg": True})
        out[name] = pkgs
    return out


def all_image_types() -> list[tuple[str, str, str]]:
    out = []
    for name in distros.list_distros():
        d = distros.get_distro(name)
        for arch in d.arches():
            for it in d.image_types(arch):
                out.append((name, arch, it))
    return out


@cache
def module_schema(kind: str, name: str) -> dict[str, Any] | None:
    path = SCHEMA_DIR / kind / f"{name}.meta.json"
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    if kind == "stages":
        # stages that take options only publish those as `schema` (osbuild wraps them the same way)
        return meta.get("schema_2") or {"options": meta.get("schema") or {}}
    if kind == "mounts":
        return meta.get("schema_2") or meta.get("schema")
    return meta.get("schema")


def check(schema: dict[str, Any], instance: Any, where: str) -> None:
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(instance), key=str)
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"


def validate_manifest(manifest: dict[str, Any]) -> None:
    check(json.loads((SCHEMA_DIR / "schemas" / "osbuild2.json").read_text()), manifest, "manifest")
    for pipeline in manifest["pipelines"]:
        for s in pipeline["stages"]:
            where = f"{pipeline['name']}/{s['type']}"
            schema2 = module_schema("stages", s["type"])
            assert schema2 is not None, f"{where}: osbuild has no such stage"
            definitions = dict(schema2.get("definitions", {}))
            for part in schema2.values():
                if isinstance(part, dict):
                    definitions.update(part.get("definitions", {}))
            wrapper = {"type": "object", "additionalProperties": False,
                       "definitions": definitions,
                       "properties": {"type": {"type": "string"},
                                      # osbuild accepts mounts on every stage (e.g. an ostree deployment)
                                      "mounts": {"type": "array"},
                                      **{k: v for k, v in schema2.items() if k != "definitions"}}}
            check(wrapper, s, where)
            for iname, inp in (s.get("inputs") or {}).items():
                schema = module_schema("inputs", inp["type"])
                assert schema is not None, f"{where}: unknown input {inp['type']}"
                check(schema, inp, f"{where}/inputs/{iname}")
            for dname, dev in (s.get("devices") or {}).items():
                schema = module_schema("devices", dev["type"])
                assert schema is not None, f"{where}: unknown device {dev['type']}"
                check(schema, dev.get("options", {}), f"{where}/devices/{dname}")
                if "parent" in dev:
                    assert dev["parent"] in s["devices"], f"{where}: parent {dev['parent']} missing"
            for mnt in s.get("mounts") or []:
                schema = module_schema("mounts", mnt["type"])
                assert schema is not None, f"{where}: unknown mount {mnt['type']}"
                check(schema, mnt, f"{where}/mounts/{mnt['name']}")
                if "source" in mnt:  # an ostree deployment mount has no device
                    assert mnt["source"] in s["devices"], f"{where}: mount source {mnt['source']} missing"
    for name, source in manifest.get("sources", {}).items():
        schema = module_schema("sources", name)
        assert schema is not None, f"unknown source {name}"
        check(schema, source, f"sources/{name}")


def options_for(it: Any) -> dict[str, Any]:
    """Resolved inputs an ostree-based type or an installer embedding Flatpaks needs (ignored by the others)."""
    commit = {"ref": "test/ref", "url": "http://example.com/repo",
              "checksum": "d04105393ca0617856b34f897842833d785522e41617e17dca2063bf97e294ef"}
    options: dict[str, Any] = {"ostree": {"ref": "test/ref", "url": "http://example.com/repo"},
                               "ostree_commits": {s["name"]: [commit] for s in it.pipelines}}
    # the Flatpaks an Atomic desktop installer embeds, as images' mock resolves them
    from distros.manifestmock import resolve_flatpak

    options["flatpaks"] = {pipeline: [resolve_flatpak(s.url, s.ref, s.remote_name) for s in sources]
                           for pipeline, sources in it.flatpak_sources({}, options).items()}
    return options


DISK_BLUEPRINT: dict[str, Any] = {"customizations": {"disk": {"partitions": [
    {"type": "plain", "mountpoint": "/data", "fs_type": "ext4", "minsize": "1 GiB"},
    {"type": "lvm", "logical_volumes": [{"mountpoint": "/", "fs_type": "xfs", "minsize": "3 GiB"},
                                        {"mountpoint": "/var", "minsize": "1 GiB"}]}]}}}
BLUEPRINTS = {"plain": {}, "customized": CUSTOM_BLUEPRINT, "disk": DISK_BLUEPRINT}


@pytest.mark.parametrize("which", list(BLUEPRINTS))
def test_every_manifest_validates(schema_dir: Path, which: str) -> None:
    customized = which != "plain"
    count = 0
    for distro, arch, name in all_image_types():
        it = distros.get_distro(distro).image_type(arch, name)
        bp = BLUEPRINTS[which]
        if name.endswith("simplified-installer"):
            # it needs a device to install to; the customized variant adds FDO and embedded ignition
            bp = SIMPLIFIED_CUSTOMIZED if customized else {"customizations": {"installation_device": "/dev/vda"}}
        try:
            sets = it.package_sets(bp, options_for(it))
            manifest = it.manifest(bp, fake_packages(arch, list(sets)), REPOS, options_for(it), seed=7)
        except ValueError as exc:
            # an image type may refuse customizations it cannot do (as osbuild-composer does);
            # the plain blueprint must always work
            if not customized:
                raise AssertionError(f"{distro}/{arch}/{name}: {exc}") from None
            continue
        try:
            validate_manifest(manifest)
        except AssertionError as exc:
            raise AssertionError(f"{distro}/{arch}/{name}: {exc}") from None
        count += 1
    assert count > 100
