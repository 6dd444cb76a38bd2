"""systemd units: installed by `make install`, consistent with the CLI and config, and accepted by
`systemd-analyze verify` (when systemd is installed; the test skips that part otherwise)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser
from core.config import Config

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("celery-composer.socket", "celery-composer-http.socket", "celery-composer.service",
         "celery-composer-worker@.service")
WORKER_INSTANCES = ("depsolve", "build", "upload", "upload.aws")


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd allows a key several times; configparser does not)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {raw!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path_factory.mktemp("destdir")
    bindir = Path(sys.executable).parent
    if not (bindir / "celery-composer").exists():
        pytest.skip("celery-composer is not installed in this venv (make venv)")
    result = subprocess.run(["make", "-s", "install", f"DESTDIR={root}", "PREFIX=/usr",
                             f"BINDIR={bindir}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {"root": root, "units": root / "usr/lib/systemd/system", "bindir": bindir,
            "config": root / "etc/celery-composer/celery-composer.toml",
            "sysusers": root / "usr/lib/sysusers.d/celery-composer.conf"}


def test_make_install_places_units_config_and_sysusers(installed):
    for unit in UNITS:
        text = (installed["units"] / unit).read_text()
        assert "/usr/bin/celery-composer" not in text or str(installed["bindir"]) == "/usr/bin"
    service = parse_unit(installed["units"] / "celery-composer.service")
    assert service["Service"]["ExecStart"] == [f"{installed['bindir']}/celery-composer serve"]
    assert installed["config"].read_text() == (ROOT / "conf/celery-composer.toml").read_text()
    assert "g weldr" in installed["sysusers"].read_text()


def test_install_keeps_an_existing_config_and_uninstall_keeps_it_too(tmp_path):
    etc = tmp_path / "etc/celery-composer"
    etc.mkdir(parents=True)
    (etc / "celery-composer.toml").write_text("# mine\n")
    args = [f"DESTDIR={tmp_path}", "PREFIX=/usr"]
    assert subprocess.run(["make", "-s", "install", *args], cwd=ROOT).returncode == 0
    assert (etc / "celery-composer.toml").read_text() == "# mine\n"
    assert (tmp_path / "usr/lib/systemd/system/celery-composer.socket").exists()
    assert subprocess.run(["make", "-s", "uninstall", *args], cwd=ROOT).returncode == 0
    assert not (tmp_path / "usr/lib/systemd/system/celery-composer.socket").exists()
    assert (etc / "celery-composer.toml").exists()


def test_socket_unit_matches_the_weldr_socket():
    socket_unit = parse_unit(ROOT / "systemd/celery-composer.socket")["Socket"]
    assert socket_unit["ListenStream"] == [str(Config().socket)]
    assert socket_unit["SocketGroup"] == [Config().socket_group]
    assert socket_unit["SocketMode"] == ["0660"]
    http = parse_unit(ROOT / "systemd/celery-composer-http.socket")["Socket"]
    assert http["Service"] == ["celery-composer.service"]
    assert all(addr.startswith("127.0.0.1:") for addr in http["ListenStream"])


def test_exec_lines_parse_with_the_real_cli():
    parser = build_parser()
    service = parse_unit(ROOT / "systemd/celery-composer.service")
    argv = shlex.split(service["Service"]["ExecStart"][0])
    assert argv[0] == "/usr/bin/celery-composer"
    assert parser.parse_args(argv[1:]).command == "serve"
    assert service["Service"]["Type"] == ["notify"]  # gunicorn's arbiter sends READY=1
    assert "celery-composer.socket" in service["Unit"]["Requires"]
    worker = parse_unit(ROOT / "systemd/celery-composer-worker@.service")
    template = worker["Service"]["ExecStart"][0]
    assert "%i" in template
    for instance in WORKER_INSTANCES:
        args = parser.parse_args(shlex.split(template.replace("%i", instance))[1:])
        assert args.command == "worker"
        assert args.queues == instance


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd)")
def test_systemd_analyze_verify(installed):
    units = installed["units"]
    names = [str(units / u) for u in UNITS if "@" not in u]
    names += [str(units / f"celery-composer-worker@{i}.service") for i in WORKER_INSTANCES]
    result = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True,
                            text=True, timeout=120)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if "celery-composer" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert not ours, "\n".join(ours)  # unknown keys and bad values are only warnings


def test_install_ships_repository_definitions(installed):
    shipped = sorted(p.name for p in (ROOT / "repositories").glob("*.json"))
    target = installed["root"] / "usr/share/celery-composer/repositories"
    assert shipped and sorted(p.name for p in target.glob("*.json")) == shipped


def test_installed_package_finds_installed_repositories(tmp_path, monkeypatch):
    """Outside a checkout (a wheel install) the default is the installed copy."""
    from core import config as config_mod

    monkeypatch.setattr(config_mod, "PROJECT_DIR", tmp_path / "site-packages")
    shared = tmp_path / "usr/share/celery-composer/repositories"
    shared.mkdir(parents=True)
    monkeypatch.setattr(config_mod, "SHARED_REPOSITORIES_DIRS", (shared,))
    monkeypatch.setattr(config_mod.sys, "prefix", str(tmp_path / "venv"))
    assert config_mod.default_repositories_dir() == shared
