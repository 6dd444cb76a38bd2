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
    with pytest.raises(SettingsError, match="Missing setting 'region'"):
        get_uploader("aws").validate({"aws_access_key": "a", "aws_secret_key": "b"}, "img")
    with pytest.raises(SettingsError, match="'container'"):
        get_uploader("azure").validate({"storage_account_name": "acct", "sas_token": "x"}, "img")
    with pytest.raises(SettingsError, match="storageAccessKey' or 'sas_token'"):
        get_uploader("azure").validate({"storage_account_name": "acct",
                                        "storage_container": "images"}, "img")


def test_bad_settings_are_named() -> None:
    aws = get_uploader("aws")
    with pytest.raises(SettingsError, match='invalid for setting "region"'):
        aws.validate({"aws_region": "mars"}, "img")
    with pytest.raises(SettingsError, match='Expected a boolean for "ena"'):
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


def test_osbuild_composer_names_are_the_names_and_earlier_ones_aliases() -> None:
    aws = get_uploader("aws")
    ours = aws.validate({"region": "eu-west-1", "accessKeyID": "AKIA", "secretAccessKey": "sk",
                         "bucket": "b"}, "img")
    assert ours == {"region": "eu-west-1", "accessKeyID": "AKIA", "secretAccessKey": "sk",
                    "bucket": "b"}
    assert aws.validate({"aws_region": "eu-west-1", "aws_access_key": "AKIA", "aws_secret_key": "sk",
                         "aws_bucket": "b"}, "img") == ours
    # the setting's own name wins over an alias given beside it
    assert aws.normalize({"aws_region": "us-east-1", "region": "eu-west-1"}) == {"region": "eu-west-1"}
    azure = get_uploader("azure").validate({"storage_account_name": "acct", "storage_container": "imgs",
                                            "storage_account_key": "k"}, "img")
    assert azure == {"storageAccount": "acct", "container": "imgs", "storageAccessKey": "k"}


def test_unknown_settings_are_ignored() -> None:
    """As osbuild-composer's JSON decoding: a key no target reads is dropped, not refused."""
    aws = get_uploader("aws")
    assert aws.validate({"region": "us-east-1", "colour": "red"}, "img") == {"region": "us-east-1"}
    assert aws.unknown_keys({"region": "us-east-1", "colour": "red"}) == ["colour"]
    # JSON null is an omitted setting, as Go's decoding leaves the field empty
    assert aws.validate({"region": "us-east-1", "bucket": None}, "img") == {"region": "us-east-1"}


@pytest.mark.parametrize("name,target", [
    ("aws", "aws"), ("aws.s3", "aws.s3"), ("generic.s3", "aws.s3"), ("s3", "aws.s3"),
    ("azure", "azure"), ("gcp", "gcp"), ("vmware", "vmware"), ("oci", "oci"),
    ("container", "container"), ("local", "local")])
def test_provider_names_and_aliases(name: str, target: str) -> None:
    assert get_uploader(name).name == target


@pytest.mark.parametrize("provider,settings,setting", [
    ("gcp", {"region": "us-east1"}, "bucket"),
    ("gcp", {"bucket": "images", "credentials": "bm90IGpzb24="}, "credentials"),
    ("vmware", {"host": "vc", "username": "u", "password": "p", "datacenter": "dc",
                "cluster": "c"}, "datastore"),
    ("oci", {"user": "ocid1.user.oc1..a", "tenancy": "ocid1.tenancy.oc1..a", "region": "us-ashburn-1",
             "compartment": "ocid1.compartment.oc1..a", "bucket": "b", "namespace": "n",
             "private_key": "k"}, "fingerprint"),
    ("container", {"password": "p"}, "username"),
    ("container", {"tls_verify": "no"}, "tls_verify"),
    ("aws.s3", {"bucket": "b", "skip_ssl_verification": "yes"}, "skip_ssl_verification"),
])
def test_new_targets_name_the_bad_setting(provider: str, settings: dict, setting: str) -> None:
    with pytest.raises(SettingsError, match=setting):
        get_uploader(provider).validate(settings, "registry.example.com/a/b:1")


def test_container_image_name_is_the_reference() -> None:
    container = get_uploader("container")
    assert container.validate({"tls_verify": False}, "127.0.0.1:5000/os/fedora:42") == {"tls_verify": False}
    with pytest.raises(SettingsError, match="not a container reference"):
        container.validate({}, "Not A Reference!")


@pytest.mark.parametrize("provider,settings,kept", [
    ("aws", {"aws_region": "us-east-1", "aws_access_key": "A", "aws_secret_key": "S",
             "aws_session_token": "T"}, {"region": "us-east-1"}),
    ("aws", {"region": "us-east-1", "secretAccessKey": "S"}, {"region": "us-east-1"}),
    ("azure", {"storage_account_name": "a", "storage_container": "c", "storage_account_key": "K",
               "sas_token": "sv=1&sig=x"}, {"storageAccount": "a", "container": "c"}),
    ("s3", {"bucket": "b", "access_key_id": "A", "secret_access_key": "S"}, {"bucket": "b"}),
    ("generic.s3", {"bucket": "b", "accessKeyID": "A", "secretAccessKey": "S", "sessionToken": "T"},
     {"bucket": "b"}),
    ("gcp", {"bucket": "b", "credentials": "eyJ0eXBlIjogIngifQ=="}, {"bucket": "b"}),
    ("vmware", {"host": "vc", "username": "u", "password": "P"}, {"host": "vc", "username": "u"}),
    ("oci", {"bucket": "b", "private_key": "PEM"}, {"bucket": "b"}),
    ("container", {"username": "u", "password": "P", "tls_verify": False},
     {"username": "u", "tls_verify": False}),
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
    assert info["settings-info"]["storageAccount"] == {
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


def test_local_upload_dirs(env, tmp_path: Path) -> None:
    """Only below `local_upload_dirs`, symlinks resolved; none configured: the target is off."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "escape").symlink_to(tmp_path / "elsewhere")
    env.config.local_upload_dirs = [str(tmp_path / "pool")]
    for directory in (tmp_path / "elsewhere", tmp_path / "pool" / "escape", tmp_path / "pool" / ".."):
        upload_id, path = env.upload_for("local", {"directory": str(directory)}, "ami", "image.raw")
        write_image(path, MiB, [(0, 100)])
        assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
        error = env.store.upload(upload_id).error
        assert "is not in local_upload_dirs" in error or "must not contain '..'" in error, error
    env.config.local_upload_dirs = []
    upload_id, path = env.upload_for("local", {"directory": str(tmp_path / "pool")}, "ami", "image.raw")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "turned off" in env.store.upload(upload_id).error
    assert not list((tmp_path / "elsewhere").iterdir()) and list((tmp_path / "pool").iterdir()) == [
        tmp_path / "pool" / "escape"]


def test_missing_image_file_fails_clearly(env, tmp_path: Path) -> None:
    upload_id, _ = env.upload_for("local", {"directory": str(tmp_path)}, "ami", "image.raw")
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "image file of compose" in env.store.upload(upload_id).error
