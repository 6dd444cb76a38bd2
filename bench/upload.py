"""Upload benchmark: what our uploaders put on the wire, and how fast, next to a baseline.

1. Azure: a sparse 4 GiB fixed VHD holding 200 MiB of data, uploaded to Azurite as a page blob.
   Baseline: azure-storage-blob's own `upload_blob(blob_type=PageBlob)` of the same file (it skips
   all-zero 4 MiB chunks; nothing finer).
2. AWS EBS direct APIs: the same image into a snapshot on moto. Baseline (computed, not run):
   osbuild-composer's road sends the whole file to S3 before `import_snapshot`.
3. S3 multipart throughput to moto: our cancellable multipart upload vs a plain
   `boto3 upload_file` of the same file, alternated in the same run.
4. GCP: the image tarball into gcp-storage-emulator (resumable, 32 MiB chunks, cancellable) vs
   google-cloud-storage's own `upload_from_filename` of the same file.
5. Container: an OCI archive pushed to Debian's docker-registry (TLS, htpasswd) by the container
   target (skopeo), bytes against the archive's layer data.

Bytes on the wire are counted by a loopback TCP relay (client → server bytes, HTTP included).
Everything runs on 127.0.0.1. Run: `make bench-upload` (needs `make test-deps` for Azurite,
gcp-storage-emulator, docker-registry and skopeo).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# run as a script, bench/ would come first on sys.path and its queue.py would shadow the stdlib's
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from tests.uploaders.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, CountingProxy, MotoServer  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB


def make_sparse_vhd(path: Path, size: int, data: int, seed: int = 7) -> int:
    """A fixed VHD of `size` disk bytes whose data lies in extents of 256 KiB–16 MiB at 4 KiB
    alignment, scattered like a filesystem leaves them; returns the bytes of data written."""
    rnd = random.Random(seed)
    written = 0
    taken: list[tuple[int, int]] = []
    with open(path, "wb") as fh:
        fh.truncate(size + 512)
        while written < data:
            length = min(rnd.randrange(256 * 1024, 16 * MiB, 4096), data - written)
            offset = rnd.randrange(0, size - length, 4096)
            if any(offset < end and start < offset + length for start, end in taken):
                continue
            taken.append((offset, offset + length))
            fh.seek(offset)
            block = bytearray(os.urandom(length))
            block[0] |= 1
            fh.write(bytes(block))
            written += length
        fh.seek(size)
        fh.write(b"conectix" + bytes(504))
    return written + 512


def bench_azure(image: Path, data: int, workers: int) -> dict:
    from azure.storage.blob import BlobClient

    from uploaders.azure import AzureUploader
    from uploaders.base import UploadContext

    azurite = Azurite()
    try:
        azurite.create_container("images")
        proxy = CountingProxy(azurite.port)
        settings = AzureUploader.validate({
            "storage_account_name": AZURITE_ACCOUNT, "storage_container": "images",
            "storage_account_key": AZURITE_KEY, "endpoint_url": proxy.url(f"/{AZURITE_ACCOUNT}")}, "bench")
        started = time.monotonic()
        AzureUploader().upload(image, "bench", settings, UploadContext(workers=workers))
        ours = {"seconds": time.monotonic() - started, "sent": proxy.sent}

        proxy.reset_counts()
        blob = BlobClient(proxy.url(f"/{AZURITE_ACCOUNT}"), "images", "baseline.vhd",
                          credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
        started = time.monotonic()
        with open(image, "rb") as fh:
            blob.upload_blob(fh, blob_type="PageBlob", length=image.stat().st_size,
                             max_concurrency=workers)
        base = {"seconds": time.monotonic() - started, "sent": proxy.sent}
        proxy.close()
    finally:
        azurite.stop()
    return {"ours": ours, "base": base, "data": data}


def bench_ebs(image: Path, data: int, workers: int) -> dict:
    from uploaders.aws import AWSUploader
    from uploaders.base import UploadContext

    moto = MotoServer()
    try:
        proxy = CountingProxy(moto.port)
        settings = AWSUploader.validate({
            "aws_region": "us-east-1", "aws_access_key": "AKIABENCH", "aws_secret_key": "bench",
            "aws_endpoint_url": proxy.url(), "aws_upload_method": "ebs-direct"}, "bench")
        uploader = AWSUploader()
        started = time.monotonic()
        snapshot = uploader.ebs_direct(image, "bench", settings, UploadContext(workers=workers))
        seconds = time.monotonic() - started
        proxy.close()
    finally:
        moto.stop()
    from uploaders.aws import EBS_BLOCK
    from uploaders.base import nonzero_chunks

    floor = sum(1 for _ in nonzero_chunks(image, EBS_BLOCK)) * EBS_BLOCK
    return {"seconds": seconds, "sent": proxy.sent, "data": data, "snapshot": snapshot,
            "import_path_bytes": image.stat().st_size, "floor": floor}


def bench_s3(path: Path, rounds: int, workers: int) -> dict:
    import boto3

    from uploaders.base import UploadContext
    from uploaders.s3 import client_config, multipart_upload

    moto = MotoServer()
    try:
        client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                              aws_access_key_id="AKIABENCH", aws_secret_access_key="bench",
                              config=client_config(workers))
        client.create_bucket(Bucket="bench")
        plain = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                             aws_access_key_id="AKIABENCH", aws_secret_access_key="bench")
        ours, base = [], []
        def run_ours(i: int) -> None:
            started = time.monotonic()
            multipart_upload(client, path, "bench", f"ours-{i}", UploadContext(workers=workers))
            ours.append(time.monotonic() - started)
            client.delete_object(Bucket="bench", Key=f"ours-{i}")

        def run_plain(i: int) -> None:
            started = time.monotonic()
            plain.upload_file(str(path), "bench", f"plain-{i}")
            base.append(time.monotonic() - started)
            plain.delete_object(Bucket="bench", Key=f"plain-{i}")

        for i in range(rounds):  # alternate who goes first: the host is shared and noisy
            for run in ((run_ours, run_plain) if i % 2 == 0 else (run_plain, run_ours)):
                run(i)
    finally:
        moto.stop()
    size = path.stat().st_size
    return {"ours": size / statistics.median(ours) / MiB, "base": size / statistics.median(base) / MiB,
            "size": size, "rounds": rounds}


def bench_gcs(path: Path, workers: int) -> dict:
    """Our chunked resumable upload and the SDK's own, through the same counting relay."""
    from tests.uploaders.emulators import GCSEmulator
    from uploaders.base import UploadContext
    from uploaders.gcp import GCPUploader

    gcs = GCSEmulator()
    try:
        client = gcs.client()
        client.create_bucket("bench")
        proxy = CountingProxy(gcs.port)
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        relayed = storage.Client(project="bench", credentials=AnonymousCredentials(),
                                 client_options={"api_endpoint": proxy.url()})
        bucket = relayed.bucket("bench")
        started = time.monotonic()
        GCPUploader.put_object(bucket, "ours.tar.gz", path, UploadContext(workers=workers))
        ours = {"seconds": time.monotonic() - started, "sent": proxy.sent}
        proxy.reset_counts()
        started = time.monotonic()
        bucket.blob("peer.tar.gz").upload_from_filename(str(path))
        base = {"seconds": time.monotonic() - started, "sent": proxy.sent}
        proxy.close()
    finally:
        gcs.stop()
    return {"ours": ours, "base": base, "data": path.stat().st_size}


def bench_container(tmp: Path, layer_mib: int) -> dict:
    from tests.uploaders.emulators import (
        REGISTRY_PASSWORD,
        REGISTRY_USER,
        Registry,
        TLSCert,
        write_oci_archive,
    )
    from uploaders.base import UploadContext
    from uploaders.container import ContainerUploader

    archive = tmp / "container.tar"
    write_oci_archive(archive, layer_mib * MiB)
    registry = Registry(TLSCert(tmp))
    try:
        proxy = CountingProxy(registry.port)
        settings = ContainerUploader.validate({"username": REGISTRY_USER, "password": REGISTRY_PASSWORD,
                                               "tls_verify": False}, f"127.0.0.1:{proxy.port}/bench/os:1")
        started = time.monotonic()
        ContainerUploader().upload(archive, f"127.0.0.1:{proxy.port}/bench/os:1", settings,
                                   UploadContext())
        seconds = time.monotonic() - started
        proxy.close()
    finally:
        registry.stop()
    return {"seconds": seconds, "sent": proxy.sent, "data": layer_mib * MiB,
            "archive": archive.stat().st_size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=4)
    parser.add_argument("--data-mib", type=int, default=200)
    parser.add_argument("--s3-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--gcs-mib", type=int, default=256)
    parser.add_argument("--container-mib", type=int, default=128)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["azure", "ebs", "s3", "gcs", "container"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        image = Path(tmp) / "disk.vhd"
        data = make_sparse_vhd(image, int(args.size_gib * GiB), args.data_mib * MiB)
        print(f"image: {image.stat().st_size / GiB:.2f} GiB fixed VHD, {data / MiB:.1f} MiB of data, "
              f"{os.stat(image).st_blocks * 512 / MiB:.1f} MiB allocated")
        if "azure" not in args.skip:
            r = bench_azure(image, data, args.workers)
            print("\nAzure page blob → Azurite")
            print(f"  {'':28} {'sent MiB':>10} {'× data':>8} {'seconds':>9}")
            for label, key in (("celery-composer", "ours"), ("azure SDK upload_blob (peer)", "base")):
                print(f"  {label:28} {r[key]['sent'] / MiB:10.1f} {r[key]['sent'] / r['data']:8.3f} "
                      f"{r[key]['seconds']:9.2f}")
            print(f"  target: ≤ 1.05 × data → {'met' if r['ours']['sent'] <= 1.05 * r['data'] else 'MISSED'}")
        if "ebs" not in args.skip:
            r = bench_ebs(image, data, args.workers)
            print("\nAWS EBS direct APIs → moto")
            print(f"  {'':28} {'sent MiB':>10} {'× data':>8} {'seconds':>9}")
            print(f"  {'celery-composer ebs-direct':28} {r['sent'] / MiB:10.1f} {r['sent'] / r['data']:8.3f} "
                  f"{r['seconds']:9.2f}")
            print(f"  {'512 KiB blocks holding data':28} {r['floor'] / MiB:10.1f} {r['floor'] / r['data']:8.3f} "
                  f"{'':>9}  (the least any EBS direct upload can send)")
            print(f"  {'import-snapshot road (peer)':28} {r['import_path_bytes'] / MiB:10.1f} "
                  f"{r['import_path_bytes'] / r['data']:8.3f} {'n/a':>9}  (computed: whole file to S3)")
            print(f"  target: ≤ 1.05 × data → {'met' if r['sent'] <= 1.05 * r['data'] else 'MISSED'}")
        if "s3" not in args.skip:
            path = Path(tmp) / "object.bin"
            with open(path, "wb") as fh:
                for _ in range(args.s3_mib):
                    fh.write(os.urandom(MiB))
            r = bench_s3(path, args.rounds, args.workers)
            print(f"\nS3 multipart → moto ({r['size'] / MiB:.0f} MiB, median of {r['rounds']} alternated rounds)")
            print(f"  {'celery-composer multipart':28} {r['ours']:8.1f} MiB/s")
            print(f"  {'boto3 upload_file (peer)':28} {r['base']:8.1f} MiB/s")
            ratio = r["ours"] / r["base"]
            print(f"  ratio {ratio:.2f} (target ≥ 0.9 → {'met' if ratio >= 0.9 else 'MISSED'})")
        if "gcs" not in args.skip:
            path = Path(tmp) / "image.tar.gz"  # a compressed tarball: every byte is data
            with open(path, "wb") as fh:
                for _ in range(args.gcs_mib):
                    fh.write(os.urandom(MiB))
            r = bench_gcs(path, args.workers)
            print(f"\nGCP image tarball → gcp-storage-emulator ({r['data'] / MiB:.0f} MiB)")
            print(f"  {'':30} {'sent MiB':>10} {'× data':>8} {'seconds':>9} {'MiB/s':>8}")
            for label, key in (("celery-composer (32 MiB chunks)", "ours"),
                               ("SDK upload_from_filename (peer)", "base")):
                print(f"  {label:30} {r[key]['sent'] / MiB:10.1f} {r[key]['sent'] / r['data']:8.3f} "
                      f"{r[key]['seconds']:9.2f} {r['data'] / MiB / r[key]['seconds']:8.1f}")
        if "container" not in args.skip:
            r = bench_container(Path(tmp), args.container_mib)
            print(f"\nContainer push → docker-registry over TLS ({r['data'] / MiB:.0f} MiB layer)")
            print(f"  {'':30} {'sent MiB':>10} {'× data':>8} {'seconds':>9} {'MiB/s':>8}")
            print(f"  {'celery-composer (skopeo)':30} {r['sent'] / MiB:10.1f} {r['sent'] / r['data']:8.3f} "
                  f"{r['seconds']:9.2f} {r['data'] / MiB / r['seconds']:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
