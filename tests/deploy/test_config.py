"""Configuration: the file, the environment, the errors, and the documentation staying in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import config as config_mod
from core.config import Config, ConfigError, load
from core.records import fields

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "conf" / "celery-composer.toml"
FIELDS = list(fields(Config))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "celery-composer.toml"
    path.write_text(text)
    return path


def test_defaults_without_file(tmp_path):
    cfg = load(tmp_path / "absent.toml" if False else None, environ={"HOME": str(tmp_path)})
    assert cfg.socket == Path("/run/weldr/api.socket")
    assert cfg.socket_group == "weldr"
    assert cfg.listen == ""
    assert cfg.broker_url == ""
    assert cfg.osbuild_command == ["osbuild"]
    assert cfg.store_path == cfg.cache_dir / "osbuild-store"
    assert cfg.artifacts_path == cfg.state_dir / "artifacts"


def test_sections_and_top_level_keys(tmp_path):
    path = write(tmp_path, f"""
log_level = "debug"
[api]
socket = "{tmp_path}/api.socket"
listen = "127.0.0.1:8700"
api_workers = 4
[storage]
state_dir = "{tmp_path}/state"
artifacts_dir = "{tmp_path}/artifacts"
[celery]
broker_url = "redis://127.0.0.1:6379/3"
embedded_workers = false
[build]
osbuild_command = ["python3", "-m", "osbuild"]
osbuild_cache_max_size = "20GiB"
build_timeout = 60
[upload_defaults.aws]
region = "eu-west-1"
""")
    cfg = load(path, environ={})
    assert cfg.socket == tmp_path / "api.socket"
    assert cfg.listen == "127.0.0.1:8700"
    assert cfg.api_workers == 4
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.artifacts_path == tmp_path / "artifacts"
    assert cfg.broker_url == "redis://127.0.0.1:6379/3"
    assert cfg.embedded_workers is False
    assert cfg.osbuild_command == ["python3", "-m", "osbuild"]
    assert cfg.osbuild_cache_max_size == "20GiB"
    assert cfg.build_timeout == 60
    assert cfg.log_level == "DEBUG"  # normalised
    assert cfg.upload_defaults == {"aws": {"region": "eu-west-1"}}


def test_environment_overrides_file_and_options_override_environment(tmp_path):
    path = write(tmp_path, '[api]\napi_workers = 4\nlisten = "127.0.0.1:1"\n')
    env = {
        "CELERY_COMPOSER_API_WORKERS": "7",
        "CELERY_COMPOSER_EMBEDDED_WORKERS": "no",
        "CELERY_COMPOSER_OSBUILD_COMMAND": "python3 -m osbuild --libdir '/src/my osbuild'",
        "CELERY_COMPOSER_UPLOAD_DEFAULTS": '{"azure": {"location": "eastus"}}',
        "CELERY_COMPOSER_OSBUILD_STORE": str(tmp_path / "store"),
        "UNRELATED": "ignored",
    }
    cfg = load(path, environ=env, listen="127.0.0.1:2")
    assert cfg.api_workers == 7
    assert cfg.embedded_workers is False
    assert cfg.osbuild_command == ["python3", "-m", "osbuild", "--libdir", "/src/my osbuild"]
    assert cfg.upload_defaults == {"azure": {"location": "eastus"}}
    assert cfg.store_path == tmp_path / "store"
    assert cfg.listen == "127.0.0.1:2"


def test_config_file_from_environment(tmp_path):
    path = write(tmp_path, 'log_format = "json"\n')
    assert load(environ={"CELERY_COMPOSER_CONFIG": str(path)}).log_format == "json"
    with pytest.raises(ConfigError, match="does not exist"):
        load(environ={"CELERY_COMPOSER_CONFIG": str(tmp_path / "missing.toml")})


def test_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "nope.toml"))):
        load(tmp_path / "nope.toml", environ={})


def test_replace_checks_values():
    cfg = Config()
    assert cfg.replace(api_workers="3").api_workers == 3
    with pytest.raises(ConfigError, match="'api_workers'"):
        cfg.replace(api_workers=0)


# (key, a bad value as the environment would give it) -- at least one per setting with a check
BAD_ENV = [
    ("socket", ""),
    ("listen", "8700"),
    ("listen", "localhost:99999"),
    ("api_workers", "two"),
    ("api_workers", "0"),
    ("body_limit", "-1"),
    ("state_dir", ""),
    ("cache_dir", ""),
    ("repositories_dir", ""),
    ("broker_url", "localhost:6379"),
    ("result_backend", "nowhere"),
    ("worker_concurrency", "-2"),
    ("embedded_workers", "maybe"),
    ("osbuild_command", ""),
    ("osbuild_cache_max_size", "lots"),
    ("build_timeout", "1.5"),
    ("task_stale_after", "0"),
    ("metadata_expire", "-1"),
    ("log_level", "loud"),
    ("log_format", "xml"),
    ("upload_defaults", "{not json"),
    ("upload_defaults", '{"aws": "us-east-1"}'),
]


@pytest.mark.parametrize("key,value", BAD_ENV)
def test_environment_errors_name_variable_and_key(key, value):
    variable = "CELERY_COMPOSER_" + key.upper()
    with pytest.raises(ConfigError) as info:
        load(environ={variable: value})
    message = str(info.value)
    assert variable in message
    assert f"'{key}'" in message


BAD_TOML = [
    ("api_workers", 'api_workers = "many"'),
    ("api_workers", "api_workers = 2.5"),
    ("api_workers", "api_workers = true"),
    ("socket_group", "socket_group = 100"),
    ("socket", "socket = 5"),
    ("osbuild_command", 'osbuild_command = ["osbuild", 3]'),
    ("osbuild_command", "osbuild_command = []"),
    ("upload_defaults", 'upload_defaults = "aws"'),
    ("embedded_workers", 'embedded_workers = "sometimes"'),
    ("sockett", 'sockett = "/run/x"'),
    ("listen", '[build]\nlisten = "127.0.0.1:8700"'),
    ("apii", '[apii]\nsocket = "/run/x"'),
    ("socket", 'socket = "/a"\n[api]\nsocket = "/b"'),
    ("api", 'api = 3'),
]


@pytest.mark.parametrize("key,text", BAD_TOML)
def test_file_errors_name_file_and_key(tmp_path, key, text):
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    message = str(info.value)
    assert str(path) in message
    assert key in message


def test_wrong_section_says_where_it_belongs(tmp_path):
    path = write(tmp_path, '[build]\nlisten = "127.0.0.1:8700"\n')
    with pytest.raises(ConfigError, match=r"belongs in \[api\]"):
        load(path, environ={})


def test_invalid_toml_names_file(tmp_path):
    path = write(tmp_path, "[api\nsocket = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path, environ={})


def test_unknown_environment_setting_is_refused():
    with pytest.raises(ConfigError, match="CELERY_COMPOSER_SOKET.*unknown setting 'soket'"):
        load(environ={"CELERY_COMPOSER_SOKET": "/run/x"})


def test_every_setting_has_a_section():
    in_sections = [k for keys in config_mod.SECTIONS.values() for k in keys]
    assert sorted(in_sections + ["upload_defaults"]) == sorted(FIELDS)


# --- documentation in step with the code -------------------------------------------------------

def readme_settings() -> list[str]:
    text = (ROOT / "README.md").read_text()
    marker = text.index("<!-- configuration reference")
    rows = []
    for line in text[marker:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        match = re.match(r"^\| `([a-z_]+)` \|", line)
        if match:
            rows.append(match.group(1))
    return rows


def test_readme_reference_lists_exactly_the_settings():
    rows = readme_settings()
    assert len(rows) == len(set(rows)), "a setting has two README rows"
    assert sorted(rows) == sorted(FIELDS)


def test_readme_reference_follows_field_order():
    assert readme_settings() == FIELDS


def example_settings() -> dict[str, str]:
    """`# key = value` lines of the example, by key, with the section they are under."""
    found: dict[str, str] = {}
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        header = re.match(r"^#?\s*\[([a-z_.]+)\]\s*$", line)
        if header:
            section = header.group(1)
            continue
        match = re.match(r"^# ([a-z_]+) = ", line)
        if match and match.group(1) in FIELDS:
            found.setdefault(match.group(1), section)
    return found


def test_example_documents_every_setting_in_its_section():
    found = example_settings()
    missing = set(FIELDS) - set(found) - {"upload_defaults"}
    assert not missing, f"settings missing from {EXAMPLE.name}: {sorted(missing)}"
    for key, section in found.items():
        assert config_mod._SECTION_OF[key] == section, key
    assert "[upload_defaults.aws]" in EXAMPLE.read_text()


def test_example_as_shipped_loads_to_defaults():
    assert load(EXAMPLE, environ={}) == load(environ={})


def test_example_uncommented_loads(tmp_path):
    """Every commented value is valid as written: uncomment them all (first of each) and load."""
    seen: set[str] = set()
    out = []
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^# ([a-z_]+ = .*)$", line)
        key = match.group(1).split(" ")[0] if match else None
        if match and (key in FIELDS or key in ("region", "location")) and key not in seen:
            seen.add(key)
            out.append(match.group(1))
        elif re.match(r"^# \[upload_defaults\.[a-z]+\]$", line):
            seen.discard("region"), seen.discard("location")
            out.append(line[2:])
        else:
            out.append(line)
    cfg = load(write(tmp_path, "\n".join(out) + "\n"), environ={})
    assert cfg.listen == "127.0.0.1:8700"
    assert cfg.broker_url == "redis://127.0.0.1:6379/0"
    assert cfg.upload_defaults == {"aws": {"region": "us-east-1"}, "azure": {"location": "eastus"}}


def test_cli_reports_configuration_errors_and_exits_2(tmp_path):
    """Every process starts through app.cli: a bad file stops it before anything runs."""
    import subprocess
    import sys

    path = write(tmp_path, '[api]\napi_workers = "two"\n')
    result = subprocess.run([sys.executable, "-m", "app.cli", "--config", str(path), "status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"celery-composer: configuration error: {path}: setting"
                                     " 'api_workers': expected an integer, got 'two'")
    assert result.stdout == ""


def test_environment_only_variables_pass_and_are_checked():
    env = {"CELERY_COMPOSER_DEPSOLVE_BACKEND": "libsolv", "CELERY_COMPOSER_DEPSOLVE_WORKERS": "3",
           "CELERY_COMPOSER_DEPSOLVE_DEFER_CACHE_WRITES": "1"}
    assert load(environ=env) == load(environ={})
    with pytest.raises(ConfigError, match="CELERY_COMPOSER_DEPSOLVE_BACKEND: expected one of"):
        load(environ={"CELERY_COMPOSER_DEPSOLVE_BACKEND": "yum"})
    with pytest.raises(ConfigError, match="CELERY_COMPOSER_DEPSOLVE_WORKERS: expected a positive"):
        load(environ={"CELERY_COMPOSER_DEPSOLVE_WORKERS": "many"})


def test_environment_only_variables_are_documented():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("<!-- environment-only variables"):]
    documented = re.findall(r"^\| `(CELERY_COMPOSER_[A-Z_]+)` \|", section, re.M)
    assert sorted(documented) == sorted(config_mod.ENV_ONLY)


def test_every_prefixed_variable_in_the_code_is_known():
    """A CELERY_COMPOSER_* name read anywhere must be a setting, environment-only or internal:
    otherwise `load()` refuses it the moment a user (or our own code) sets it."""
    known = {"CELERY_COMPOSER_" + f.upper() for f in FIELDS} | set(config_mod.ENV_ONLY) \
        | set(config_mod.INTERNAL_ENV)
    found = set()
    for folder in ("app", "tasks", "distros", "uploaders"):
        for path in (ROOT / folder).rglob("*.py"):
            found.update(re.findall(r"CELERY_COMPOSER_[A-Z][A-Z_]*[A-Z]", path.read_text()))
    unknown = found - known
    assert not unknown, f"unknown CELERY_COMPOSER_ variables: {sorted(unknown)}"


def test_local_upload_dirs_checked_and_old_key_named(tmp_path):
    cfg = load(write(tmp_path, '[uploads]\nlocal_upload_dirs = ["/srv/images/", "/var/lib/x"]\n'),
               environ={})
    assert cfg.local_upload_dirs == ["/srv/images", "/var/lib/x"]
    assert load(environ={"CELERY_COMPOSER_LOCAL_UPLOAD_DIRS": "/a /b"}).local_upload_dirs == ["/a", "/b"]
    for bad in ('["images"]', '["/srv/../etc"]'):
        with pytest.raises(ConfigError, match="local_upload_dirs"):
            load(write(tmp_path, f"[uploads]\nlocal_upload_dirs = {bad}\n"), environ={})
    with pytest.raises(ConfigError, match="now the setting local_upload_dirs"):
        load(write(tmp_path, '[upload_defaults.local]\nallowed_directories = ["/srv"]\n'), environ={})
