"""What a change of the engine or its definitions changes in the manifests (`make manifest-diff`).

    python distros/manifestdiff.py dump DIR        # with the engine to look at first on sys.path
    python distros/manifestdiff.py compare OLD NEW  # the differences, type by type

`dump` writes the manifest of every offered distro x arch x image type for an empty and a
customized blueprint on fixed fake packages (the same inputs for every engine revision, so only
the engine's changes show); `compare` prints, per manifest, the difference up to seeded identifiers
(distros.compare) and a summary count. Run as a script (not `-m`) so that the `distros` package of
another checkout can be put first on PYTHONPATH.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmanifestdiff\n-----END PGP PUBLIC KEY BLOCK-----\n"
REPOS = [{"name": "base", "baseurl": "https://example.com/base", "gpgkey": KEY, "check_gpg": True}]
BLUEPRINTS: dict[str, dict[str, Any]] = {
    "empty": {},
    "customized": {
        "name": "customized",
        "packages": [{"name": "tmux", "version": "*"}],
        "customizations": {
            "hostname": "diff-host", "kernel": {"append": "debug"},
            "user": [{"name": "alice", "password": "$6$salt$hash", "key": "ssh-ed25519 AAAA alice", "groups": ["wheel"]}],
            "group": [{"name": "ops", "gid": 1300}],
            "timezone": {"timezone": "Europe/Prague", "ntpservers": ["ntp.example.com"]},
            "locale": {"languages": ["cs_CZ.UTF-8"], "keyboard": "cz"},
            "firewall": {"ports": ["8080:tcp"], "services": {"enabled": ["http"]}},
            "services": {"enabled": ["sshd"], "disabled": ["kdump"]},
            "filesystem": [{"mountpoint": "/var/log", "minsize": 2147483648}, {"mountpoint": "/root", "minsize": 1073741824}],
            "directories": [{"path": "/etc/example", "mode": "0750"}],
            "files": [{"path": "/etc/example/file.conf", "data": "x=1\n", "mode": "0640"}],
        },
    },
}


def _packages(arch: str, pipelines: list[str]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for i, name in enumerate(pipelines):
        out[name] = [{"name": pkg, "epoch": 0, "version": "6.1.0", "release": "1.diff", "arch": arch,
                      "remote_location": f"https://example.com/{pkg}.rpm",
                      "checksum": "sha256:" + f"{i:02x}{j:02x}".ljust(64, "0"), "check_gpg": True}
                     for j, pkg in enumerate(["kernel", "kernel-core", "bash", "systemd"])]
    return out


def dump(out: Path) -> int:
    import distros

    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in distros.list_distros():
        distro = distros.get_distro(name)
        for arch in distro.arches():
            for type_name in distro.image_types(arch):
                it = distro.image_type(arch, type_name)
                for bp_name, bp in BLUEPRINTS.items():
                    try:
                        sets = it.package_sets(bp)
                        text = json.dumps(it.manifest(bp, _packages(arch, list(sets)), REPOS, {}, 0), indent=1)
                    except Exception as exc:    # a request the type refuses is a result too
                        text = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
                    (out / f"{name}_{arch}_{type_name}_{bp_name}.json").write_text(text)
                    count += 1
    print(f"{count} manifests in {out}")
    return 0


def compare(old: Path, new: Path) -> int:
    from distros.compare import diff

    changed, added, removed = 0, [], []
    names = sorted({p.name for p in old.glob("*.json")} | {p.name for p in new.glob("*.json")})
    for name in names:
        a, b = old / name, new / name
        if not a.exists():
            added.append(name)
            continue
        if not b.exists():
            removed.append(name)
            continue
        if a.read_bytes() == b.read_bytes():
            continue
        difference = diff(json.loads(a.read_text()), json.loads(b.read_text()))
        if difference:
            changed += 1
            print(f"=== {name[:-5]}\n{difference}")
    for name in added:
        print(f"+++ new: {name[:-5]}")
    for name in removed:
        print(f"--- gone: {name[:-5]}")
    print(f"{len(names)} manifests: {changed} changed, {len(added)} new, {len(removed)} gone")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "dump":
        return dump(Path(argv[1]))
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
