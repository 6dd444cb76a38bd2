"""Depsolve benchmark: celery-composer's libsolv depsolver side by side with dnf 4.

    make bench-depsolve            # or: .venv/bin/python bench/depsolve.py [--packages 70000]

Two datasets: the real CentOS Stream 9 metadata in ../shared/repodata (BaseOS 2022 +
AppStream 2025, ~18.8k packages; skipped when absent) and a generated repository of 70,000
packages with realistic fan-out (sonames, file requires, weak deps, several versions of some
packages, a comps group), generated once and cached under .cache/bench/.  The transaction is a
CentOS 9 qcow2-like OS package set of ~400 packages (`@core`, kernel, grub2, chrony, …).

The peer is dnf 4 (Debian's `python3-dnf`, run by the system python3), driven the way
osbuild-composer's dnf-json drove it: a Base with no config file, the repositories added by
baseurl, `fill_sack(load_system_repo=False)`, `install_specs(include, exclude)`, `resolve()`.

Measured, each in a fresh process so peak RSS means something:
- in-process: cold (empty caches), warm from disk (caches filled, new process, new pool),
  warm in memory (the same pool/Base asked again: a worker's second request);
- whole processes: `celery-composer depsolve …` vs a dnf-json-like script, cold and warm,
  Python start-up included;
- the solver process pool's round trip for a warm request (what `blueprints/depsolve` pays on
  top of the route itself).
Every run reports whether both solvers chose the identical set of packages (NEVRAs).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ itself is sys.path[0], and bench/queue.py would shadow the standard
# library's queue module (which concurrent.futures needs): put the project root there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
SHARED = ROOT.parent / "shared" / "repodata"
CACHE = ROOT / ".cache" / "bench"
SYSTEM_PYTHON = "/usr/bin/python3"

# A CentOS Stream 9 qcow2 OS set (osbuild/images' qcow2 list, centos-release for redhat-release),
# minus what the 2022/2025 snapshot mix cannot satisfy (cloud-init, python3-libselinux, rsyslog
# need newer BaseOS packages than the 2022 snapshot has).
QCOW2_INCLUDE = [
    "@core", "kernel", "dracut-config-generic", "grub2-pc", "grub2-efi-x64", "shim-x64",
    "efibootmgr", "chrony", "NetworkManager", "authselect-compat", "cloud-utils-growpart",
    "cockpit-system", "cockpit-ws", "dnf-utils", "dosfstools", "nfs-utils", "oddjob",
    "oddjob-mkhomedir", "psmisc", "python3-jsonschema", "qemu-guest-agent", "centos-release",
    "rsync", "tar", "tuned", "tcpdump", "tmux", "vim-enhanced", "bash-completion", "sudo",
    "openssh-server", "lvm2", "xfsprogs",
]
QCOW2_EXCLUDE = [
    "aic94xx-firmware", "alsa-firmware", "alsa-lib", "alsa-tools-firmware", "biosdevname",
    "dnf-plugin-spacewalk", "dracut-config-rescue", "iprutils", "ivtv-firmware", "langpacks-*",
    "nss", "plymouth", "rng-tools", "udisks2", "python3-libselinux", "rsyslog", "firewalld",
]


# --- the generated repository ------------------------------------------------------------------

_WORDS = ("lib", "py", "perl", "rust", "golang", "ghc", "texlive", "nodejs", "java", "qt5", "kf5",
          "gnome", "xorg", "mingw", "R", "php", "ruby", "ocaml", "fonts", "hunspell")


def _entry(name: str, flags: str | None = None, evr: tuple[str, str, str] | None = None) -> str:
    if flags and evr:
        e, v, r = evr
        return f'<rpm:entry name="{name}" flags="{flags}" epoch="{e}" ver="{v}" rel="{r}"/>'
    return f'<rpm:entry name="{name}"/>'


def generate_repository(dest: Path, count: int, seed: int = 9) -> dict:
    """A repository of `count` packages; returns the package set to depsolve in it.

    Shape: a few hundred "core" libraries everything leans on (power-law popularity), sonames
    as provides, requires on sonames, names and versioned names, file requires on the core
    packages' paths (some only filelists can answer), Recommends, ~8% of names in two
    versions, ~20% noarch.
    """
    rng = random.Random(seed)
    repodata = dest / "repodata"
    repodata.mkdir(parents=True)
    names = []
    for i in range(count):
        names.append(f"{rng.choice(_WORDS)}-{hashlib.md5(str(i).encode()).hexdigest()[:6]}-{i}")
    names[1] = "kernel"  # every blueprint depsolve asks for it (the API measurement needs one)
    versions: list[list[tuple[str, str, str]]] = []
    for _ in range(count):
        evrs = [("0", f"{rng.randint(0, 9)}.{rng.randint(0, 30)}", f"{rng.randint(1, 9)}.el9")]
        if rng.random() < 0.08:
            e, v, r = evrs[0]
            evrs.insert(0, (e, v, f"0.{r}"))  # an older release of the same version
        versions.append(evrs)
    arches = ["noarch" if rng.random() < 0.2 else "x86_64" for _ in range(count)]
    soname = {i: f"lib{names[i].split('-')[1]}.so.{rng.randint(0, 5)}()(64bit)"
              for i in range(count) if arches[i] == "x86_64" and rng.random() < 0.5}
    core_count = 300

    def pick_dependency(i: int) -> int:
        # Lower indexes are more basic; popularity falls off like a power law.
        if i <= 1:
            return 0
        bound = min(i, core_count) if rng.random() < 0.7 else i
        return int(bound * (rng.random() ** 3))

    primary = gzip.open(repodata / "primary.xml.gz", "wt", compresslevel=3)
    filelists = gzip.open(repodata / "filelists.xml.gz", "wt", compresslevel=3)
    total = sum(len(v) for v in versions)
    primary.write('<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/'
                  'metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" '
                  f'packages="{total}">\n')
    filelists.write('<?xml version="1.0" encoding="UTF-8"?>\n<filelists xmlns="http://linux.duke.'
                    f'edu/metadata/filelists" packages="{total}">\n')
    deps: dict[int, list[int]] = {}
    for i in range(count):
        name, arch = names[i], arches[i]
        n_req = rng.randint(1, 7) if i else 0
        required = sorted({pick_dependency(i) for _ in range(n_req)} - {i})
        deps[i] = required
        requires = []
        for j in required:
            kind = rng.random()
            if j in soname and kind < 0.6:
                requires.append(_entry(soname[j]))
            elif kind < 0.8:
                requires.append(_entry(names[j]))
            elif kind < 0.9:
                e, v, r = versions[j][0]
                requires.append(_entry(names[j], "GE", (e, v, "0")))
            elif j < core_count:
                # File requires name interpreters and tools of the base system (a few hundred
                # distinct paths, as in Fedora where most are /bin/sh, /usr/bin/python3, perl,
                # …), mostly where primary.xml lists them (bin/); a few only filelists answer.
                requires.append(_entry(f"/usr/share/{names[j]}/data" if rng.random() < 0.03
                                       else f"/usr/bin/{names[j]}"))
            else:
                requires.append(_entry(names[j]))
        recommends = [_entry(names[pick_dependency(i)])] if i and rng.random() < 0.15 else []
        for e, v, r in versions[i]:
            nevra = f"{name}-{v}-{r}.{arch}"
            pkgid = hashlib.sha256(nevra.encode()).hexdigest()
            provides = [_entry(name, "EQ", (e, v, r))]
            if i in soname:
                provides.append(_entry(soname[i]))
            primary.write(
                f'<package type="rpm"><name>{name}</name><arch>{arch}</arch>'
                f'<version epoch="{e}" ver="{v}" rel="{r}"/>'
                f'<checksum type="sha256" pkgid="YES">{pkgid}</checksum>'
                f"<summary>Generated package {i}</summary>"
                f"<description>Package {i} of a generated benchmark repository.</description>"
                f"<packager>bench</packager><url>https://example.org/{name}</url>"
                f'<time file="1700000000" build="1700000000"/>'
                f'<size package="1000" installed="2000" archive="2100"/>'
                f'<location href="Packages/{nevra}.rpm"/>'
                f"<format><rpm:license>MIT</rpm:license><rpm:vendor>bench</rpm:vendor>"
                f"<rpm:group>Unspecified</rpm:group><rpm:buildhost>bench</rpm:buildhost>"
                f"<rpm:sourcerpm>{name}-{v}-{r}.src.rpm</rpm:sourcerpm>"
                f'<rpm:header-range start="4504" end="5000"/>'
                f"<rpm:provides>{''.join(provides)}</rpm:provides>"
                + (f"<rpm:requires>{''.join(requires)}</rpm:requires>" if requires else "")
                + (f"<rpm:recommends>{''.join(recommends)}</rpm:recommends>" if recommends else "")
                + f"<file>/usr/bin/{name}</file></format></package>\n")
            filelists.write(
                f'<package pkgid="{pkgid}" name="{name}" arch="{arch}">'
                f'<version epoch="{e}" ver="{v}" rel="{r}"/><file>/usr/bin/{name}</file>'
                f"<file>/usr/share/{name}/data</file><file>/usr/share/doc/{name}/README</file>"
                "</package>\n")
    primary.write("</metadata>\n")
    filelists.write("</filelists>\n")
    primary.close()
    filelists.close()

    # The request: a core group plus names, grown until the closure is about 400 packages.
    def closure(start: list[int]) -> set[int]:
        seen: set[int] = set()
        todo = list(start)
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo.extend(deps[k])
        return seen

    group = list(range(5, 125, 3))
    chosen: list[int] = []
    candidates = list(range(core_count, count))
    rng.shuffle(candidates)
    while len(closure(group + chosen)) < 400 and candidates:
        chosen.append(candidates.pop())
    comps = ['<?xml version="1.0" encoding="UTF-8"?>', "<comps>", "<group><id>core</id>"
             "<name>Core</name><description>generated</description><packagelist>"]
    comps += [f'<packagereq type="mandatory">{names[k]}</packagereq>' for k in group]
    comps += ["</packagelist></group>", "</comps>"]
    (repodata / "comps.xml").write_text("\n".join(comps) + "\n")
    _write_repomd(repodata, {"primary": "primary.xml.gz", "filelists": "filelists.xml.gz",
                             "group": "comps.xml"})
    return {"include": ["@core"] + [names[k] for k in chosen], "exclude": []}


def _write_repomd(repodata: Path, documents: dict[str, str]) -> None:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<repomd xmlns="http://linux.duke.edu/metadata/repo" '
             'xmlns:rpm="http://linux.duke.edu/metadata/rpm">', "<revision>1</revision>"]
    for dtype, name in documents.items():
        body = (repodata / name).read_bytes()
        opened = gzip.decompress(body) if name.endswith(".gz") else body
        parts.append(
            f'<data type="{dtype}"><checksum type="sha256">{hashlib.sha256(body).hexdigest()}'
            f'</checksum><open-checksum type="sha256">{hashlib.sha256(opened).hexdigest()}'
            f'</open-checksum><location href="repodata/{name}"/><timestamp>1700000000'
            f"</timestamp><size>{len(body)}</size><open-size>{len(opened)}</open-size></data>")
    parts.append("</repomd>")
    (repodata / "repomd.xml").write_text("\n".join(parts) + "\n")


def generated_dataset(count: int) -> tuple[list[dict], dict]:
    dest = CACHE / f"generated-{count}-v4"
    request_file = dest / "request.json"
    if not request_file.exists():
        shutil.rmtree(dest, ignore_errors=True)
        print(f"generating a {count}-package repository in {dest} …", file=sys.stderr)
        # In a child: the generator's lists would otherwise stay in this process, and every
        # measured process forked from it would start with that much memory.
        subprocess.run([sys.executable, __file__, "--generate-into", str(dest),
                        "--packages", str(count)], check=True)
    request = json.loads(request_file.read_text())
    return [{"id": "generated", "baseurl": (dest / "repo").as_uri() + "/"}], request


def shared_dataset() -> tuple[list[dict], dict] | None:
    if not (SHARED / "cs9-baseos-2022" / "repodata" / "repomd.xml").exists():
        return None
    repos = [{"id": "baseos", "baseurl": (SHARED / "cs9-baseos-2022").as_uri() + "/"},
             {"id": "appstream", "baseurl": (SHARED / "cs9-appstream-2025").as_uri() + "/"}]
    return repos, {"include": QCOW2_INCLUDE, "exclude": QCOW2_EXCLUDE}


# --- the measurements (each runs in a child process) --------------------------------------------

def peak_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space, so unlike ru_maxrss it does
    not inherit the peak of the process that forked us."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child_ours(repos: list[dict], request: dict, cache: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from depsolve import PackageSet, depsolve, solver_solv

    package_set = PackageSet(request["include"], request["exclude"])

    def once() -> tuple[float, list]:
        started = time.perf_counter()
        [packages] = depsolve([package_set], repos, arch="x86_64", releasever="9",
                              cache_dir=cache)
        return time.perf_counter() - started, packages

    cold, packages = once()
    solver_solv.forget_pools()
    warm_disk, _ = once()
    warm_memory = statistics.median(once()[0] for _ in range(5))
    nevras = sorted(f"{p['name']}-{p['epoch']}:{p['version']}-{p['release']}.{p['arch']}"
                    for p in packages)
    return {"cold": cold, "warm_disk": warm_disk, "warm_memory": warm_memory,
            "peak_mb": peak_mb(), "nevras": nevras}


# dnf 4 as osbuild-composer's dnf-json used it; run by the system python3.
DNF_SCRIPT = r'''
import json, sys, time, statistics
import dnf
repos, request, cache, mode = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]

def base():
    b = dnf.Base()
    b.conf.config_file_path = "/dev/null"
    b.conf.cachedir = cache
    b.conf.persistdir = cache + "/persist"
    b.conf.zchunk = False
    b.conf.substitutions["arch"] = "x86_64"
    b.conf.substitutions["basearch"] = "x86_64"
    b.conf.substitutions["releasever"] = "9"
    for r in repos:
        repo = dnf.repo.Repo(r["id"], b.conf)
        repo.baseurl = [r["baseurl"]]
        repo.metadata_expire = "1d"
        b.repos.add(repo)
    b.fill_sack(load_system_repo=False)
    return b

def solve(b):
    b.reset(goal=True)
    b.sack.reset_excludes()
    b.install_specs(request["include"], request["exclude"])
    b.resolve()
    return sorted(f"{p.name}-{p.epoch}:{p.version}-{p.release}.{p.arch}"
                  for p in b.transaction.install_set)

def timed(fn):
    t = time.perf_counter(); value = fn(); return time.perf_counter() - t, value

if mode == "once":
    nevras = solve(base())
    json.dump({"count": len(nevras)}, sys.stdout)
    sys.exit(0)
cold, nevras = timed(lambda: solve(base()))
warm_disk, _ = timed(lambda: solve(base()))
b = base()
solve(b)
warm_memory = statistics.median(timed(lambda: solve(b))[0] for _ in range(5))
json.dump({"cold": cold, "warm_disk": warm_disk, "warm_memory": warm_memory,
           "peak_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status")
                       if l.startswith("VmHWM:")][0],
           "nevras": nevras}, sys.stdout)
'''


def _timed_process(argv: list[str]) -> tuple[float, float, str, float]:
    """Wall time, peak RSS (MB), stdout and CPU time (user + system, s) of one process.

    Started through GNU time when there is one: a process's ru_maxrss includes the peak of the
    process it was forked from, and GNU time is a small parent to fork from.  CPU time is what
    the waited-for children used (the process, and GNU time's few ms): on a machine shared with
    other work, wall time measures the neighbours as much as the process.
    """
    gnu_time = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as rss:
        command = [str(gnu_time), "-f", "%M", "-o", rss.name, *argv] if gnu_time.exists() \
            else argv
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, cwd=ROOT)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n"
                               f"{proc.stderr.decode()[-3000:]}")
        text = rss.read().strip().splitlines()
        peak = int(text[-1]) / 1024 if text and text[-1].isdigit() else float("nan")
    return elapsed, peak, proc.stdout.decode(), cpu


ROUNDS = 3


def _median_of(runs: list[dict]) -> dict:
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            out[key] = statistics.median(r[key] for r in runs)
    return out


def in_process(repos: list[dict], request: dict, rounds: int = ROUNDS) -> tuple[dict, dict]:
    """Each solver's child process, alternated `rounds` times (the machine's load drifts),
    every round from empty caches; the median of each figure."""
    code = ("import json, sys; sys.path.insert(0, %r); import bench.depsolve as b; "
            "json.dump(b._child_ours(json.loads(sys.argv[1]), json.loads(sys.argv[2]), "
            "sys.argv[3]), sys.stdout)" % str(ROOT))
    ours_runs, dnf_runs = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-ours-") as ours_cache, \
                tempfile.TemporaryDirectory(prefix="bench-dnf-") as dnf_cache:
            _, _, out, _ = _timed_process([sys.executable, "-c", code, json.dumps(repos),
                                        json.dumps(request), ours_cache])
            ours_runs.append(json.loads(out))
            _, _, out, _ = _timed_process([SYSTEM_PYTHON, "-c", DNF_SCRIPT, json.dumps(repos),
                                        json.dumps(request), dnf_cache, "full"])
            dnf_runs.append(json.loads(out))
    return _median_of(ours_runs), _median_of(dnf_runs)


def _wait_for_solver_caches(cache: str, count: int, timeout: float = 300) -> None:
    """The CLI writes its .solv caches in a child after answering, the lean ones (what its
    next run loads) last; a user's next run comes later than the benchmark's would, so wait
    for them before timing warm runs."""
    deadline = time.monotonic() + timeout
    while len(list(Path(cache).glob("rpmmd/*/*.lean.solv"))) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the CLI left no solver caches in {cache}")
        time.sleep(0.1)
    time.sleep(0.5)  # the writer renames last; let it exit


def _compile_bytecode() -> None:
    """Byte-compile the packages the CLI imports, as an installation has them (pip compiles at
    install, dnf's are compiled by its distribution package).  Under PYTHONDONTWRITEBYTECODE a
    source checkout would otherwise recompile every module in every run (~60 ms of CPU)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "app", "core", "depsolve"],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})


def whole_processes(repos: list[dict], request: dict, rounds: int = ROUNDS,
                    warm_rounds: int = 7) -> dict:
    """`celery-composer depsolve` vs a dnf-json-like process, alternated, cold then warm."""
    def commands(ours_cache: str, dnf_cache: str) -> tuple[list[str], list[str]]:
        # What the `celery-composer` entry script runs (it may be mid-reinstall on a busy tree).
        cli = [sys.executable, "-m", "app.cli", "depsolve", "--arch", "x86_64",
               "--releasever", "9", "--cache-dir", ours_cache]
        for repo in repos:
            cli += ["--repo", repo["baseurl"]]
        for name in request["exclude"]:
            cli += ["--exclude", name]
        cli += request["include"]
        dnf = [SYSTEM_PYTHON, "-c", DNF_SCRIPT, json.dumps(repos), json.dumps(request), dnf_cache,
               "once"]
        return cli, dnf

    _compile_bytecode()
    cold: dict[str, list[tuple[float, float, str, float]]] = {"ours": [], "dnf": []}
    warm: dict[str, list[tuple[float, float, str, float]]] = {"ours": [], "dnf": []}
    with tempfile.TemporaryDirectory(prefix="bench-proc-") as base:
        for index in range(rounds):
            ours_cache, dnf_cache = f"{base}/ours{index}", f"{base}/dnf{index}"
            cli, dnf = commands(ours_cache, dnf_cache)
            cold["ours"].append(_timed_process(cli))
            _wait_for_solver_caches(ours_cache, len(repos))
            cold["dnf"].append(_timed_process(dnf))
        for _ in range(warm_rounds):
            warm["ours"].append(_timed_process(cli))
            warm["dnf"].append(_timed_process(dnf))
    return {label: {"cold": statistics.median(r[0] for r in cold[label]),
                    "cold_peak_mb": statistics.median(r[1] for r in cold[label]),
                    "warm": statistics.median(r[0] for r in warm[label]),
                    "warm_peak_mb": statistics.median(r[1] for r in warm[label]),
                    "cold_cpu": statistics.median(r[3] for r in cold[label]),
                    "warm_cpu": statistics.median(r[3] for r in warm[label])}
            for label in ("ours", "dnf")}


def pool_round_trip(repos: list[dict], request: dict) -> float:
    sys.path.insert(0, str(ROOT))
    from depsolve import PackageSet
    from depsolve.processes import SolverProcesses

    processes = SolverProcesses(max_workers=1)
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as cache:
        try:
            package_set = PackageSet(request["include"], request["exclude"])
            args = dict(arch="x86_64", releasever="9", cache_dir=cache)
            processes.depsolve([package_set], repos, **args)
            times = []
            for _ in range(7):
                started = time.perf_counter()
                processes.depsolve([package_set], repos, **args)
                times.append(time.perf_counter() - started)
            return statistics.median(times)
        finally:
            processes.close()


def api_blueprint_depsolve(repos: list[dict], packages: list[str]) -> tuple[float, float]:
    """`GET /api/v1/blueprints/depsolve/<bp>` through a real `celery-composer serve`.

    Returns (first request, median warm request) in seconds. The server's system repositories
    for centos-9 are pointed at `repos`; the blueprint asks for `packages`.
    """
    import http.client
    import signal
    import socket as socket_mod

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path: str) -> None:
            super().__init__("localhost", timeout=600)
            self.path = path

        def connect(self) -> None:
            self.sock = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
            self.sock.settimeout(600)
            self.sock.connect(self.path)

    def request(sock: str, method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
        conn = UnixConnection(sock)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, url, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as base_dir:
        base = Path(base_dir)
        (base / "repositories").mkdir()
        (base / "repositories" / "centos-9.json").write_text(json.dumps(
            {"x86_64": [{"name": r["id"], "baseurl": r["baseurl"], "check_gpg": False}
                        for r in repos]}))
        sock = str(base / "api.socket")
        env = dict(os.environ, CELERY_COMPOSER_CACHE_DIR=str(base / "cache"),
                   CELERY_COMPOSER_REPOSITORIES_DIR=str(base / "repositories"),
                   CELERY_COMPOSER_EMBEDDED_WORKERS="false", CELERY_COMPOSER_LOG_LEVEL="WARNING")
        log = open(base / "server.log", "wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--socket", sock, "--state-dir",
             str(base / "state"), "--workers", "1"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("API server did not start:\n"
                                       + (base / "server.log").read_text()[-3000:])
                try:
                    if request(sock, "GET", "/api/status")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            blueprint = {"name": "bench-qcow2", "description": "depsolve benchmark",
                         "version": "0.0.1", "distro": "centos-9",
                         "packages": [{"name": n, "version": "*"} for n in packages]}
            status, answer = request(sock, "POST", "/api/v1/blueprints/new", blueprint)
            if status != 200:
                raise RuntimeError(f"blueprints/new: {status} {answer}")

            def depsolve_once() -> float:
                started = time.perf_counter()
                status, answer = request(sock, "GET", "/api/v1/blueprints/depsolve/bench-qcow2")
                elapsed = time.perf_counter() - started
                if status != 200 or answer.get("errors"):
                    raise RuntimeError(f"blueprints/depsolve: {status} {answer.get('errors')}")
                return elapsed

            first = depsolve_once()
            warm = statistics.median(depsolve_once() for _ in range(9))
            return first, warm
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()


def report(name: str, ours: dict, theirs: dict, processes: dict, pool: float,
           api: tuple[float, float] | None = None) -> dict:
    same = ours["nevras"] == theirs["nevras"]
    only_ours = sorted(set(ours["nevras"]) - set(theirs["nevras"]))
    only_dnf = sorted(set(theirs["nevras"]) - set(ours["nevras"]))
    print(f"\n## {name}: {len(ours['nevras'])} packages (dnf: {len(theirs['nevras'])}); "
          f"identical package sets: {'yes' if same else 'NO'}")
    if not same:
        print(f"   only ours: {only_ours[:10]}\n   only dnf:  {only_dnf[:10]}")
    print(f"{'measurement':44} {'celery-composer':>16} {'dnf 4':>10} {'dnf/ours':>9}")
    rows = [
        ("in-process cold (empty caches)", ours["cold"], theirs["cold"]),
        ("in-process warm (disk caches, new pool/Base)", ours["warm_disk"], theirs["warm_disk"]),
        ("in-process warm (same pool/Base)", ours["warm_memory"], theirs["warm_memory"]),
        ("whole process cold (CLI vs dnf-json-like)", processes["ours"]["cold"],
         processes["dnf"]["cold"]),
        ("whole process warm", processes["ours"]["warm"], processes["dnf"]["warm"]),
        ("whole process cold, CPU (user+sys)", processes["ours"]["cold_cpu"],
         processes["dnf"]["cold_cpu"]),
        ("whole process warm, CPU (user+sys)", processes["ours"]["warm_cpu"],
         processes["dnf"]["warm_cpu"]),
    ]
    for label, a, b in rows:
        print(f"{label:44} {a:>15.3f}s {b:>9.3f}s {b / a:>8.1f}×")
    print(f"{'peak RSS in-process run (MB)':44} {ours['peak_mb']:>16.0f} {theirs['peak_mb']:>10.0f}")
    print(f"{'peak RSS whole process cold (MB)':44} {processes['ours']['cold_peak_mb']:>16.0f} "
          f"{processes['dnf']['cold_peak_mb']:>10.0f}")
    print(f"{'solver process pool round trip, warm':44} {pool:>15.3f}s")
    if api:
        print(f"{'API blueprints/depsolve: first / warm':44} {api[0]:>7.3f}s {api[1]:>6.3f}s")
    return {"dataset": name, "packages": len(ours["nevras"]), "identical": same,
            "ours": {k: v for k, v in ours.items() if k != "nevras"},
            "dnf": {k: v for k, v in theirs.items() if k != "nevras"},
            "processes": processes, "pool_round_trip": pool, "api_blueprint_depsolve": api}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=70000,
                        help="size of the generated repository (default 70000)")
    parser.add_argument("--skip-shared", action="store_true")
    parser.add_argument("--skip-generated", action="store_true")
    parser.add_argument("--skip-api", action="store_true",
                        help="do not measure blueprints/depsolve through a real API server")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_into:
        work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".gen-"))
        request = generate_repository(work / "repo", args.packages)
        (work / "request.json").write_text(json.dumps(request))
        os.replace(work, args.generate_into)
        return 0
    if subprocess.run([SYSTEM_PYTHON, "-c", "import dnf"], capture_output=True).returncode:
        print("dnf 4 is not importable by /usr/bin/python3: apt-get install python3-dnf",
              file=sys.stderr)
        return 2
    CACHE.mkdir(parents=True, exist_ok=True)
    datasets = []
    if not args.skip_shared:
        shared = shared_dataset()
        if shared is None:
            print(f"(skipping real metadata: {SHARED} not present)")
        else:
            datasets.append(("CentOS Stream 9 BaseOS+AppStream (../shared/repodata)", *shared))
    if not args.skip_generated:
        datasets.append((f"generated {args.packages}-package repository",
                         *generated_dataset(args.packages)))
    results = []
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; medians of "
          f"{ROUNDS} alternated rounds (7 for warm processes)")
    for name, repos, request in datasets:
        ours, theirs = in_process(repos, request)
        processes = whole_processes(repos, request)
        pool = pool_round_trip(repos, request)
        api = None
        if not args.skip_api:
            # A blueprint holds no excludes, so it asks for the set's plain names; the kernel
            # comes in on its own (osbuild-composer adds it to every blueprint depsolve).
            names = [n for n in request["include"] if not n.startswith("@")]
            try:
                api = api_blueprint_depsolve(repos, names)
            except RuntimeError as exc:
                print(f"(API measurement failed: {exc})", file=sys.stderr)
        results.append(report(name, ours, theirs, processes, pool, api))
    (CACHE / "depsolve-results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
