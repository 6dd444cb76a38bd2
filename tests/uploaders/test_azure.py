"""Azure target against Azurite's blob service (real HTTP on loopback, real page blobs)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from tests.uploaders.conftest import MiB, azurite_settings, cancel_once_sent, write_image
from tests.uploaders.emulators import AZURITE_ACCOUNT, AZURITE_KEY
from uploaders import service
from uploaders.service import run_upload


@pytest.fixture
def container(azurite) -> str:
    name = f"c{uuid.uuid4().hex[:12]}"
    azurite.create_container(name)
    return name


def blob_service(azurite) -> BlobServiceClient:
    return BlobServiceClient(azurite.url, credential={"account_name": AZURITE_ACCOUNT,
                                                      "account_key": AZURITE_KEY})


def test_sparse_vhd_sends_only_data(env, azurite, container, proxy_to) -> None:
    proxy = proxy_to(azurite.port)
    upload_id, path = env.upload_for("azure", azurite_settings(proxy.url(f"/{AZURITE_ACCOUNT}"), container),
                                     "vhd", "disk.vhd", image_name="rhel-azure")
    # scattered data, as a filesystem leaves it: runs inside and across 4 MiB ranges
    extents = [(0, 1 * MiB), (3 * MiB + 512 * 1024, 1 * MiB), (20 * MiB, 64 * 1024),
               (33 * MiB, 5 * MiB), (60 * MiB - 128 * 1024, 128 * 1024)]
    data_bytes = write_image(path, 64 * MiB, extents, vhd=True)

    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"

    upload = env.store.upload(upload_id)
    assert upload.result == {"blob_url": f"{proxy.url()}/{AZURITE_ACCOUNT}/{container}/rhel-azure.vhd",
                             "account": AZURITE_ACCOUNT, "container": container, "blob": "rhel-azure.vhd"}
    # 512 bytes of footer ride in a 64 KiB granule; everything else is data
    assert proxy.sent <= 1.05 * (data_bytes + 64 * 1024)
    blob = blob_service(azurite).get_blob_client(container, "rhel-azure.vhd")
    props = blob.get_blob_properties()
    assert props.blob_type == "PageBlob" and props.size == path.stat().st_size
    assert blob.download_blob().readall() == path.read_bytes()
    written = sum(r.end - r.start + 1 for r in blob.list_page_ranges())
    assert written <= data_bytes + 64 * 1024


def test_xz_vhd_is_unpacked_and_sent_as_a_page_blob(env, azurite, container, tmp_path) -> None:
    """The RHUI, SAP and CVM Azure types ship `disk.vhd.xz`; Azure takes only the plain VHD."""
    import lzma

    vhd = tmp_path / "disk.vhd"
    write_image(vhd, 8 * MiB, [(1 * MiB, 64 * 1024)], vhd=True)
    upload_id, path = env.upload_for("azure", azurite_settings(azurite.url, container),
                                     "azure-rhui", "disk.vhd.xz", image_name="rhui")
    with open(vhd, "rb") as src, lzma.open(path, "wb", preset=0) as out:
        out.write(src.read())
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    blob = blob_service(azurite).get_blob_client(container, "rhui.vhd")
    assert blob.download_blob().readall() == vhd.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["disk.vhd.xz"]  # unpacked copy removed


def test_sas_token_works_and_never_shows(env, azurite, container, proxy_to) -> None:
    sas = generate_container_sas(AZURITE_ACCOUNT, container, account_key=AZURITE_KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, create=True,
                                                                    delete=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))
    settings = azurite_settings(azurite.url, container, sas_token=sas, blob_name="custom.vhd")
    del settings["storage_account_key"]
    upload_id, path = env.upload_for("azure", settings, "vhd", "disk.vhd")
    write_image(path, 8 * MiB, [(MiB, MiB)], vhd=True)
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED", env.store.upload(upload_id).error
    upload = env.store.upload(upload_id)
    assert upload.result["blob_url"].endswith(f"/{container}/custom.vhd")
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    shown = [str(service.render_upload(upload, detail=True)), service.upload_store.read_log(env.db, upload_id)]
    assert all(signature not in text and "sas_token" not in text for text in shown)


@pytest.mark.parametrize("case", ["bad-key", "missing-container", "not-a-vhd"])
def test_failures_are_clear(env, azurite, container, case: str) -> None:
    settings = azurite_settings(azurite.url, container)
    filename, vhd, expected = "disk.vhd", True, ""
    if case == "bad-key":
        settings["storage_account_key"] = "YmFkIGtleSBmb3IgdGVzdHMgb25seQ=="
        expected = f"container '{container}' of account '{AZURITE_ACCOUNT}': authentication failed"
    elif case == "missing-container":
        settings["storage_container"] = "nosuchcontainer"
        expected = f"container 'nosuchcontainer' of account '{AZURITE_ACCOUNT}' does not exist"
    else:
        vhd = False
        expected = "disk.vhd is not a fixed VHD: no VHD footer in its last 512 bytes"
    upload_id, path = env.upload_for("azure", settings, "vhd", filename)
    write_image(path, 4 * MiB, [(0, 4096)], vhd=vhd)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error.startswith(expected), upload.error
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"
    if case == "bad-key":
        assert "YmFkIGtleSBmb3IgdGVzdHMgb25seQ==" not in service.upload_store.read_log(env.db, upload_id)


def test_cancel_mid_upload(env, azurite, container, proxy_to) -> None:
    proxy = proxy_to(azurite.port, rate=2 * MiB)
    upload_id, path = env.upload_for("azure", azurite_settings(proxy.url(f"/{AZURITE_ACCOUNT}"), container),
                                     "vhd", "disk.vhd")
    write_image(path, 128 * MiB, [(0, 96 * MiB)], vhd=True)
    canceller = cancel_once_sent(env.store, upload_id, proxy)
    assert run_upload(env.config, upload_id, store=env.store, workers=4) == "CANCELLED"
    canceller.join()
    assert proxy.sent < 48 * MiB
    assert "deleted incomplete blob" in service.upload_store.read_log(env.db, upload_id)
    names = [b.name for b in blob_service(azurite).get_container_client(container).list_blobs()]
    assert names == []


def test_network_failure_mid_upload(env, azurite, container, proxy_to) -> None:
    proxy = proxy_to(azurite.port, rate=8 * MiB)
    upload_id, path = env.upload_for("azure", azurite_settings(proxy.url(f"/{AZURITE_ACCOUNT}"), container),
                                     "vhd", "disk.vhd")
    write_image(path, 64 * MiB, [(0, 48 * MiB)], vhd=True)
    proxy.cut_after(6 * MiB)
    assert run_upload(env.config, upload_id, store=env.store, workers=4) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error.startswith("uploading page blob test-image.vhd: network error"), upload.error
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"


# --- managed image: the blob on Azurite, Entra ID and Resource Manager on a local double ----------
# No emulator of Microsoft Entra ID or Azure Resource Manager exists; `AzureDouble` serves their
# documented endpoints over HTTPS with our own CA (REQUESTS_CA_BUNDLE), and azure-identity's and
# azure-mgmt-compute's real code paths run against it.

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "1950a258-227b-4e31-a9cf-717495945fc2"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
CLIENT_SECRET = "client-secret-for-tests-0123"


@pytest.fixture
def arm(tls_cert, monkeypatch) -> Any:
    from tests.uploaders.doubles import AzureDouble

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_cert.cert))
    double = AzureDouble(tls_cert, TENANT, CLIENT, CLIENT_SECRET, groups={"images-rg"})
    yield double
    double.stop()


def image_settings(azurite, container: str, arm, **extra: Any) -> dict[str, Any]:
    return azurite_settings(azurite.url, container, **{
        "resource_group": "images-rg", "location": "eastus", "subscription_id": SUBSCRIPTION,
        "tenant_id": TENANT, "client_id": CLIENT, "client_secret": CLIENT_SECRET,
        "authority_host": arm.url, "management_endpoint": arm.url, **extra})


def test_managed_image_from_the_page_blob(env, azurite, container, arm, monkeypatch) -> None:
    from uploaders.azure import AzureUploader

    monkeypatch.setattr(AzureUploader, "poll_seconds", 0.05)
    upload_id, path = env.upload_for("azure", image_settings(azurite, container, arm), "vhd",
                                     "disk.vhd", image_name="rhel-managed")
    write_image(path, 8 * MiB, [(0, MiB)], vhd=True)
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    result = env.store.upload(upload_id).result
    blob_url = f"{azurite.url}/{container}/rhel-managed.vhd"
    assert result["blob_url"] == blob_url and result["resource_group"] == "images-rg"
    assert result["image_id"] == (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/images-rg/providers/"
                                  "Microsoft.Compute/images/rhel-managed")
    image = arm.images["rhel-managed"]
    assert image["location"] == "eastus"
    assert image["properties"]["hyperVGeneration"] == "V1"  # x86_64 compose
    assert image["properties"]["storageProfile"]["osDisk"] == {
        "osType": "Linux", "osState": "Generalized", "blobUri": blob_url}
    assert image["properties"]["provisioningState"] == "Succeeded"
    assert arm.polls["op-rhel-managed"] >= 2  # the long-running operation was followed to its end
    assert blob_service(azurite).get_blob_client(container, "rhel-managed.vhd").exists()
    assert CLIENT_SECRET not in service.upload_store.read_log(env.db, upload_id)


def test_managed_image_failures_name_the_part(env, azurite, container, arm) -> None:
    upload_id, path = env.upload_for("azure", image_settings(azurite, container, arm,
                                                             resource_group="missing-rg"),
                                     "vhd", "disk.vhd", image_name="img")
    write_image(path, 4 * MiB, [(0, 4096)], vhd=True)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert env.store.upload(upload_id).error == "resource group 'missing-rg' does not exist"

    wrong = "not-the-client-secret-value"
    upload_id, path = env.upload_for("azure", image_settings(azurite, container, arm, client_secret=wrong),
                                     "vhd", "disk.vhd", image_name="img2")
    write_image(path, 4 * MiB, [(0, 4096)], vhd=True)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith("image 'img2' in resource group 'images-rg': authentication failed"), error
    assert wrong not in error and wrong not in service.upload_store.read_log(env.db, upload_id)


def test_managed_image_settings_checked_first() -> None:
    from uploaders.base import SettingsError, get_uploader

    azure = get_uploader("azure")
    base = {"storageAccount": "acct", "container": "images", "storageAccessKey": "k"}
    with pytest.raises(SettingsError, match="'location'"):
        azure.validate({**base, "resource_group": "rg", "subscription_id": SUBSCRIPTION}, "img")
    with pytest.raises(SettingsError, match="go together"):
        azure.validate({**base, "client_id": CLIENT}, "img")
    with pytest.raises(SettingsError, match='invalid for setting "hyper_v_generation"'):
        azure.validate({**base, "hyper_v_generation": "V3"}, "img")
