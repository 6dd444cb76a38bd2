"""Real RPM repositories for the depsolve tests, built from `specs/` with rpmbuild + createrepo_c.

`specs/baseos/` becomes a repository with gzip metadata and a comps group file; `specs/appstream/`
one with xz metadata, a zstd filelists (recompressed here: Debian's createrepo_c has no zstd) and a
modules document, so every decompression path the depsolver has is exercised.
Building takes a few seconds, so the result is kept under `.cache/depsolve-test-repos/<hash>/`
(gitignored), keyed by the specs' content; concurrent test runs build it once (flock).

Also here: a small HTTP server on 127.0.0.1 that serves those repositories and can be told to
fail, so retries, metalinks, mirrorlists and broken repositories meet a real socket.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SPECS = Path(__file__).parent / "specs"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "depsolve-test-repos"
REPOS = {"baseos": "gz", "appstream": "xz"}
_BUILD_VERSION = "2"


def _specs_hash() -> str:
    digest = hashlib.sha256(_BUILD_VERSION.encode())
    for path in sorted(SPECS.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(SPECS)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _rpmbuild(spec: Path, topdir: Path) -> list[Path]:
    text = spec.read_text()
    command = ["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {topdir}",
               "--define", "_source_payload w2.gzdio", "--define", "_binary_payload w2.gzdio",
               "--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}"]
    if "BuildArch: noarch" not in text:
        command += ["--target", "x86_64"]
    result = subprocess.run(command + [str(spec)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"rpmbuild {spec.name} failed:\n{result.stderr}")
    return sorted((topdir / "RPMS").rglob("*.rpm"))


def _build_repo(name: str, compression: str, dest: Path) -> None:
    source = SPECS / name
    packages = dest / "Packages"
    packages.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="rpmbuild-") as work:
        specs = sorted(source.glob("*.spec"))
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
            built = pool.map(lambda s: _rpmbuild(s, Path(work) / s.stem), specs)
            for rpms in built:
                for rpm in rpms:
                    shutil.copy2(rpm, packages / rpm.name)
    command = ["createrepo_c", "--quiet", "--general-compress-type", compression, "--no-database"]
    if (source / "comps.xml").exists():
        command += ["--groupfile", str(source / "comps.xml")]
    subprocess.run(command + [str(dest)], check=True)
    if (source / "modules.yaml").exists():
        subprocess.run(["modifyrepo_c", "--mdtype=modules",
                        f"--compress-type={compression}",
                        str(source / "modules.yaml"), str(dest / "repodata")], check=True,
                       stdout=subprocess.DEVNULL)
    if compression == "xz":
        _recompress_zstd(dest, "filelists")


def _recompress_zstd(repo: Path, data_type: str) -> None:
    """Swap one document of repomd.xml for a zstd-compressed copy, checksums and all."""
    import lzma
    import re

    import zstandard

    repomd_path = repo / "repodata" / "repomd.xml"
    repomd = repomd_path.read_text()
    block = re.search(rf'<data type="{data_type}">.*?</data>', repomd, re.S)
    assert block, f"no {data_type} in {repomd_path}"
    href = re.search(r'<location href="([^"]+)"', block.group(0)).group(1)
    plain = lzma.decompress((repo / href).read_bytes())
    packed = zstandard.ZstdCompressor().compress(plain)
    digest = hashlib.sha256(packed).hexdigest()
    new_href = f"repodata/{digest}-{data_type}.xml.zst"
    (repo / new_href).write_bytes(packed)
    (repo / href).unlink()
    old_sum = re.search(r'<checksum type="sha256">([0-9a-f]+)</checksum>', block.group(0)).group(1)
    old_size = re.search(r"<size>(\d+)</size>", block.group(0)).group(1)
    new_block = (block.group(0).replace(href, new_href).replace(old_sum, digest)
                 .replace(f"<size>{old_size}</size>", f"<size>{len(packed)}</size>"))
    repomd_path.write_text(repomd.replace(block.group(0), new_block))


def built_repos() -> dict[str, Path]:
    """Paths of the test repositories, building them first if this spec set never was."""
    target = CACHE / _specs_hash()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".build-"))
            try:
                for name, compression in REPOS.items():
                    _build_repo(name, compression, work / name)
                (work / ".complete").write_text("ok\n")
                if target.exists():
                    shutil.rmtree(target)
                os.replace(work, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return {name: target / name for name in REPOS}


class RepoServer:
    """Serves a directory over HTTP on 127.0.0.1, counting requests and failing on demand."""

    def __init__(self, root: Path, tls: tuple[str, str] | None = None) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.documents: dict[str, tuple[int, bytes]] = {}
        self.proxied: list[str] = []
        self._failures: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                path = self.path
                if "://" in path:  # asked as a proxy: "GET http://host/path"
                    with server._lock:
                        server.proxied.append(path)
                    path = "/" + path.split("://", 1)[1].split("/", 1)[1]
                with server._lock:
                    server.requests[path] += 1
                    queue = server._failures.get(path)
                    status = queue.pop(0) if queue else None
                if status is not None:
                    self.send_error(status)
                    return
                if path in server.documents:
                    code, body = server.documents[path]
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                local = (server.root / path.split("?")[0].lstrip("/")).resolve()
                if not str(local).startswith(str(server.root.resolve())) or not local.is_file():
                    self.send_error(404)
                    return
                body = local.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:  # (certificate, key): serve HTTPS
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next requests for `path` with these statuses, then serve it normally."""
        with self._lock:
            self._failures.setdefault(path, []).extend(statuses)

    def serve(self, path: str, body: bytes, status: int = 200) -> None:
        self.documents[path] = (status, body)

    def count(self, suffix: str) -> int:
        return sum(n for path, n in self.requests.items() if path.endswith(suffix))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
