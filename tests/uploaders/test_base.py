"""The uploader contract without any emulator: settings, secrets, sparse reading, parallel parts,
and the local target end to end through `run_upload` on a real store."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.uploaders.conftest import MiB, write_image
from uploaders import TARGETS
from uploaders.base import (
    SettingsError,
    UploadCancelled,
    UploadContext,
    get_uploader,
    nonzero_chunks,
    nonzero_runs,
    provider_names,
    redact,
    run_parallel,
    strip_secrets,
)
from uploaders.service import run_upload


def test_targets_match_registry() -> None:
    assert sorted(TARGETS) == provider_names()


def test_missing_setting_is_named() -> None:
    with pytest.raises(SettingsError, match="Missing setting 'aws_region'"):
        get_uploader("aws").validate({"aws_access_key": "a", "aws_secret_key": "b"}, "img")
    with pytest.raises(SettingsError, match="'storage_container'"):
        get_uploader("azure").validate({"storage_account_name": "acct", "sas_token": "x"}, "img")
    with pytest.raises(SettingsError, match="storage_account_key' or 'sas_token'"):
        get_uploader("azure").validate({"storage_account_name": "acct",
                                        "storage_container": "images"}, "img")


def test_bad_settings_are_named() -> None:
    aws = get_uploader("aws")
    with pytest.raises(SettingsError, match='unexpected setting: "colour"'):
        aws.validate({"aws_region": "us-east-1", "colour": "red"}, "img")
    with pytest.raises(SettingsError, match='invalid for setting "aws_region"'):
        aws.validate({"aws_region": "mars"}, "img")
    with pytest.raises(SettingsError, match='Expected a boolean for "aws_ena"'):
        aws.validate({"aws_region": "us-east-1", "aws_ena": "yes"}, "img")
    with pytest.raises(SettingsError, match='Type "qcow2" is not supported by provider "aws"!'):
        aws.validate({"aws_region": "us-east-1"}, "img", "qcow2")
    with pytest.raises(SettingsError, match="Image name cannot be empty"):
        aws.validate({"aws_region": "us-east-1"}, "")
    with pytest.raises(SettingsError, match="go together"):
        aws.validate({"aws_region": "us-east-1", "aws_access_key": "only-one"}, "img")
    with pytest.raises(SettingsError, match="needs a bucket"):
        aws.validate({"aws_region": "us-east-1", "aws_upload_method": "import-snapshot"}, "img")


def test_bad_secret_value_is_not_echoed() -> None:
    with pytest.raises(SettingsError) as err:
        get_uploader("s3").validate({"bucket": "b", "presigned_url_expiry": "soon"}, "img")
    assert "presigned_url_expiry" in str(err.value)


def test_osbuild_composer_names_are_accepted() -> None:
    settings = get_uploader("aws").validate(
        {"region": "eu-west-1", "accessKeyID": "AKIA", "secretAccessKey": "sk", "bucket": "b"}, "img")
    assert settings == {"aws_region": "eu-west-1", "aws_access_key": "AKIA", "aws_secret_key": "sk",
                        "aws_bucket": "b"}


@pytest.mark.parametrize("provider,settings,kept", [
    ("aws", {"aws_region": "us-east-1", "aws_access_key": "A", "aws_secret_key": "S",
             "aws_session_token": "T"}, {"aws_region": "us-east-1"}),
    ("aws", {"region": "us-east-1", "secretAccessKey": "S"}, {"aws_region": "us-east-1"}),
    ("azure", {"storage_account_name": "a", "storage_container": "c", "storage_account_key": "K",
               "sas_token": "sv=1&sig=x"}, {"storage_account_name": "a", "storage_container": "c"}),
    ("s3", {"bucket": "b", "access_key_id": "A", "secret_access_key": "S"}, {"bucket": "b"}),
    ("nope", {"password": "x"}, {}),
])
def test_strip_secrets(provider: str, settings: dict, kept: dict) -> None:
    assert strip_secrets(provider, settings) == kept


def test_sas_signature_is_a_secret_on_its_own() -> None:
    values = get_uploader("azure").secret_values({"sas_token": "?sv=2024&sig=abcd%2Fefgh1234"})
    assert "abcd%2Fefgh1234" in values


def test_redact() -> None:
    assert redact("key=abcdef and abcdef", ["abcdef"]) == "key=******** and ********"


def test_providers_info_shape() -> None:
    info = get_uploader("azure").provider_info()
    assert info["display"] == "Azure" and "vhd" in info["supported_types"]
    assert info["settings-info"]["storage_account_name"] == {
        "display": "Storage account name", "type": "string", "placeholder": "",
        "regex": "[a-z0-9]{3,24}"}


def test_nonzero_chunks_skip_holes_and_written_zeros(tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    write_image(path, 64 * MiB, [(MiB, 10), (20 * MiB + 5, 3 * MiB)])
    with open(path, "r+b") as fh:  # allocated but zero: must be skipped as well
        fh.seek(40 * MiB)
        fh.write(bytes(2 * MiB))
    skipped: list[int] = []
    chunks = list(nonzero_chunks(path, MiB, on_skip=skipped.append))
    assert [i for i, _ in chunks] == [1, 20, 21, 22, 23]
    assert all(len(d) == MiB for _, d in chunks)
    assert sum(skipped) >= 2 * MiB
    with open(path, "rb") as fh:
        for index, data in chunks:
            fh.seek(index * MiB)
            assert fh.read(MiB) == data


def test_nonzero_runs_split_windows(tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    write_image(path, 16 * MiB, [(0, 64 * 1024), (3 * MiB, 128 * 1024), (4 * MiB - 64 * 1024, 128 * 1024)])
    runs = [(off, len(data)) for off, data in nonzero_runs(path, 4 * MiB, 64 * 1024)]
    assert runs == [(0, 64 * 1024), (3 * MiB, 128 * 1024), (4 * MiB - 64 * 1024, 64 * 1024),
                    (4 * MiB, 64 * 1024)]


def test_run_parallel_stops_on_first_error() -> None:
    started: list[int] = []

    def work(job: int) -> int:
        started.append(job)
        if job == 3:
            raise OSError("boom")
        return 1

    with pytest.raises(OSError, match="boom"):
        run_parallel(iter(range(1000)), work, UploadContext(workers=2), total=1000)
    assert len(started) < 100  # scheduling stopped; the generator was not drained


def test_run_parallel_cancel_between_parts() -> None:
    cancel = threading.Event()
    done: list[int] = []

    def work(job: int) -> int:
        done.append(job)
        if job == 5:
            cancel.set()
        return 1

    with pytest.raises(UploadCancelled):
        run_parallel(iter(range(1000)), work, UploadContext(should_cancel=cancel.is_set, workers=1),
                     total=1000)
    assert len(done) < 20


def test_local_upload_keeps_holes(env, tmp_path: Path) -> None:
    target_dir = tmp_path / "images"
    target_dir.mkdir()
    upload_id, path = env.upload_for("local", {"directory": str(target_dir)}, "qcow2", "disk.qcow2",
                                     image_name="my-image")
    write_image(path, 256 * MiB, [(0, MiB), (100 * MiB, 2 * MiB)])
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    copy = target_dir / "my-image.qcow2"
    assert copy.read_bytes() == path.read_bytes()
    assert os.stat(copy).st_blocks * 512 < 16 * MiB  # still sparse
    upload = env.store.upload(upload_id)
    assert upload.result == {"path": str(copy)} and upload.progress == 1.0
    assert not list(target_dir.glob(".*partial"))
    from core import metrics

    text = metrics.render(env.config, env.db)[0].decode()
    sent = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith('celery_composer_upload_bytes_total{target="local"}')]
    assert sent == [3 * MiB]  # the data, not the 256 MiB of holes


def test_local_upload_refuses_overwrite_and_missing_dir(env, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.raw").write_bytes(b"old")
    upload_id, path = env.upload_for("local", {"directory": str(tmp_path / "out"), "filename": "x.raw"},
                                     "ami", "image.raw")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "exists (set 'overwrite' to replace it)" in env.store.upload(upload_id).error
    assert (tmp_path / "out" / "x.raw").read_bytes() == b"old"

    upload_id, path = env.upload_for("local", {"directory": str(tmp_path / "absent")}, "ami", "image.raw")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "does not exist" in env.store.upload(upload_id).error
    compose = env.store.get(env.store.upload(upload_id).compose_id)
    assert compose.queue_status == "FINISHED"


def test_local_allowed_directories(env, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    env.config.upload_defaults = {"local": {"allowed_directories": [str(tmp_path / "pool")]}}
    upload_id, path = env.upload_for("local", {"directory": str(tmp_path / "elsewhere")}, "ami", "image.raw")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "not one of the allowed upload directories" in env.store.upload(upload_id).error


def test_missing_image_file_fails_clearly(env, tmp_path: Path) -> None:
    upload_id, _ = env.upload_for("local", {"directory": str(tmp_path)}, "ami", "image.raw")
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "image file of compose" in env.store.upload(upload_id).error
