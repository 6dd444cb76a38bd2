"""docker-compose.yml and containers/: checked by reading them (no Docker engine runs here).

Every command a service or healthcheck runs must parse with our real CLI parser (so a renamed
subcommand or option breaks this test, not a deployment); every volume, image target and setting
they use must exist; every queue must have a worker service.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.cli import build_parser
from core.config import _FIELDS, ConfigError, _coerce

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
EXPECTED_SERVICES = {"redis", "api", "worker-depsolve", "worker-build", "worker-upload", "flower"}
PATH_SETTINGS = ("state_dir", "cache_dir", "artifacts_dir", "osbuild_store")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def ours(service: dict) -> bool:
    """Built from our Containerfile (as opposed to an upstream image such as redis)."""
    return "build" in service


def containerfile(service: dict) -> Path:
    build = service["build"]
    return ROOT / build.get("context", ".") / build["dockerfile"]


def test_services(compose):
    assert set(compose["services"]) == EXPECTED_SERVICES


def test_our_commands_parse_with_the_real_cli(compose):
    parser = build_parser()
    commands = []
    for name, service in compose["services"].items():
        if ours(service):
            commands.append((name, service["command"]))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "celery-composer"]:
            commands.append((f"{name} healthcheck", test[1:]))
    assert len(commands) >= 8
    for name, command in commands:
        assert command[0] == "celery-composer", name
        try:
            args = parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{name}: {' '.join(command)} is not a valid celery-composer command")
        assert args.command in {"serve", "worker", "status"}, name


def test_every_queue_has_a_worker_service(compose):
    from tasks import celery_app

    consumed: set[str] = set()
    for service in compose["services"].values():
        command = service.get("command", [])
        if ours(service) and command[1] == "worker":
            queues = command[command.index("--queues") + 1].split(",")
            for queue in queues:
                if queue == "all":
                    consumed.update(celery_app.all_queues())
                elif queue == "upload":
                    consumed.update(q for q in celery_app.all_queues() if q.startswith("upload."))
                else:
                    consumed.add(queue)
    assert consumed >= set(celery_app.all_queues())
    build = compose["services"]["worker-build"]["command"]
    assert build[build.index("--queues") + 1] == "build"


def test_images_and_containerfiles(compose):
    for name, service in compose["services"].items():
        if ours(service):
            path = containerfile(service)
            assert path.is_file(), name
            assert path.parent.name == "containers"
            text = path.read_text()
            target = service["build"]["target"]
            assert re.search(rf"^FROM \S+ AS {re.escape(target)}$", text, re.M), (name, target)
            for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
                assert (ROOT / source).exists(), f"{path.name} copies missing {source}"
        else:
            image = service["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), \
                f"{name}: pin upstream image {image}"


def test_containerfile_copies_every_package_and_installs_every_upload_extra():
    """The image holds every package pyproject.toml installs (a package missing from the COPY
    lines makes `celery-composer --help` fail at build time) and the SDKs of every target."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    text = (ROOT / "containers" / "Containerfile").read_text()
    copied = set(re.findall(r"^COPY (?!--from)(\S+) ", text, re.M))
    assert set(packages) <= copied, set(packages) - copied
    for extra in ("clouds", "oci"):
        assert f"['optional-dependencies']['{extra}']" in text, extra


def test_build_worker_has_osbuild_and_libdnf5_from_fedora(compose):
    service = compose["services"]["worker-build"]
    assert service["privileged"] is True
    text = containerfile(service).read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    by_name = {re.match(r"\S+ AS (\S+)", s).group(1): s for s in stages[1:]}
    assert "fedora" in by_name["service"].splitlines()[0]
    assert "python3-libdnf5" in by_name["service"]
    build_stage = by_name[service["build"]["target"]]
    assert build_stage.startswith("service AS ")  # on top of the service image
    assert re.search(r"dnf -y install[^&]*\bosbuild\b", build_stage)


def test_volumes_are_declared_and_used(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for entry in service.get("volumes", []):
            source = entry.split(":", 1)[0]
            assert not source.startswith(("/", ".")), f"{name}: bind mount {entry}; use a volume"
            assert source in declared, f"{name}: volume {source} is not declared"
            used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    for wanted in ("state", "metadata-cache", "osbuild-store", "artifacts", "weldr-socket"):
        assert wanted in declared


def test_settings_are_real_valid_and_backed_by_volumes(compose):
    for name, service in compose["services"].items():
        if not ours(service):
            continue
        env = service["environment"]
        mounts = {entry.split(":")[1] for entry in service.get("volumes", [])}
        settings = {}
        for variable, value in env.items():
            if not variable.startswith("CELERY_COMPOSER_"):
                continue
            key = variable[len("CELERY_COMPOSER_"):].lower()
            assert key in _FIELDS, f"{name}: {variable} is not a setting"
            default = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
            try:
                settings[key] = _coerce(key, default)
            except ConfigError as exc:
                pytest.fail(f"{name}: {variable}={value}: {exc}")
        assert settings["broker_url"] == "redis://redis:6379/0"
        for key in PATH_SETTINGS:
            path = str(settings[key])
            needs = {"api": ("state_dir", "artifacts_dir"),
                     "worker-depsolve": ("state_dir", "cache_dir"),
                     "worker-build": ("state_dir", "artifacts_dir", "osbuild_store"),
                     "worker-upload": ("state_dir", "artifacts_dir")}[name]
            if key in needs:
                assert path in mounts, f"{name}: {key}={path} is not on a volume"
    api = compose["services"]["api"]
    assert any(m.endswith(":/run/weldr") for m in api["volumes"])  # the default socket's dir


def test_interpolations_have_defaults():
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r"\$\{([^}]*)\}", text):
        assert ":-" in match.group(1), f"${{{match.group(1)}}} has no default"


def test_healthchecks_and_loopback_ports(compose):
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    api = compose["services"]["api"]
    listen = api["command"][api["command"].index("--listen") + 1]
    assert any(p.endswith(":" + listen.rsplit(":", 1)[1]) for p in api["ports"])
    for name in ("api", "worker-depsolve", "worker-build", "worker-upload", "flower"):
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker client not installed")
def test_docker_compose_config_when_available():
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


MULTI_MACHINE_FILE = ROOT / "docker-compose.multi-machine.yml"


def test_multi_machine_variant_shares_no_volume_between_our_services():
    """docker-compose.multi-machine.yml: each of our services could be a machine of its own —
    no volume mounted by two of them — and all reach the same database, bucket and broker."""
    multi = yaml.safe_load(MULTI_MACHINE_FILE.read_text())
    parser = build_parser()
    owners: dict[str, str] = {}
    queues: set[str] = set()
    for name, service in multi["services"].items():
        if not ours(service):
            continue
        parser.parse_args(service["command"][1:])
        for entry in service.get("volumes", []):
            volume = entry.split(":")[0]
            assert volume not in owners, f"{volume} is shared by {owners[volume]} and {name}"
            owners[volume] = name
        env = service["environment"]
        settings = {}
        for variable, value in env.items():
            if variable.startswith("CELERY_COMPOSER_"):
                key = variable[len("CELERY_COMPOSER_"):].lower()
                assert key in _FIELDS, f"{name}: {variable} is not a setting"
                settings[key] = _coerce(key, re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)))
        assert settings["database_url"].startswith("postgresql://"), name
        assert settings["artifacts_url"].startswith("s3://"), name
        assert settings["broker_url"] == "redis://redis:6379/0", name
        command = service["command"]
        if "--queues" in command:
            queues.update(command[command.index("--queues") + 1].split(","))
    assert queues == {"depsolve", "build", "upload"}
    assert set(multi["volumes"]) == set(owners) | {"postgres-data", "minio-data", "redis-data"}
    for match in re.finditer(r"\$\{([^}]*)\}", MULTI_MACHINE_FILE.read_text()):
        assert ":-" in match.group(1), f"${{{match.group(1)}}} has no default"
