"""Several processes sharing one cache directory, and the API's pool of solver processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import pytest

from depsolve import DepsolveError, PackageSet, RepositoryError
from depsolve.processes import SolverProcesses


def _depsolve_in_worker(repos, cache_dir, start, results) -> None:
    """One Celery-worker-like process: wait for the others, then depsolve."""
    import os

    from depsolve import depsolve

    start.wait(30)
    [packages] = depsolve([PackageSet(["@^minimal-environment", "kernel"])], repos,
                          arch="x86_64", releasever="9", cache_dir=cache_dir)
    results.put((os.getpid(), [(p["name"], p["remote_location"]) for p in packages]))


def test_workers_sharing_a_cache_download_each_document_once(server, cache_dir):
    repos = [{"id": "baseos", "baseurl": f"{server.url}/baseos/"},
             {"id": "appstream", "baseurl": f"{server.url}/appstream/"}]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [context.Process(target=_depsolve_in_worker,
                               args=(repos, str(cache_dir), start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    answers = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert len({pid for pid, _ in answers}) == 4
    assert all(packages == answers[0][1] for _, packages in answers)
    assert ("tmux", f"{server.url}/appstream/Packages/tmux-3.2a-4.el9.x86_64.rpm") in answers[0][1]
    # The lock makes the first worker download, the others wait and reuse what it stored.
    downloaded = {path: n for path, n in server.requests.items() if "repomd.xml" not in path}
    assert downloaded and all(n == 1 for n in downloaded.values()), downloaded
    assert server.count("/repodata/repomd.xml") == 2
    assert len(list((cache_dir / "rpmmd").glob("*/*.solv"))) == 2


@pytest.fixture(scope="module")
def solver_processes():
    processes = SolverProcesses(max_workers=2)
    yield processes
    processes.close()


def test_solver_processes_serve_request_threads(solver_processes, repo_defs, cache_dir):
    def one(include: str) -> list[str]:
        [packages] = solver_processes.depsolve([PackageSet([include])], repo_defs, arch="x86_64",
                                               releasever="9", cache_dir=cache_dir)
        return [p["name"] for p in packages]

    with ThreadPoolExecutor(max_workers=6) as threads:
        answers = list(threads.map(one, ["tmux", "bash", "@core", "tmux", "bash", "@core"]))
    assert answers[0] == answers[3] and answers[1] == answers[4] and answers[2] == answers[5]
    assert "libevent" in answers[0] and "chrony" in answers[2]
    pids = solver_processes.worker_pids()
    assert 1 <= len(pids) <= 2
    one("kernel")
    assert solver_processes.worker_pids() == pids  # the same warm processes, reused


def test_errors_cross_the_process_boundary(solver_processes, repo_defs, cache_dir):
    with pytest.raises(DepsolveError) as info:
        solver_processes.depsolve([PackageSet(["broken-app"])], repo_defs, arch="x86_64",
                                  releasever="9", cache_dir=cache_dir)
    assert "libfoo >= 9" in str(info.value) and info.value.kind == "depsolve"
    with pytest.raises(RepositoryError) as info:
        solver_processes.depsolve([PackageSet(["bash"])], [{"id": "x", "baseurl": "file:///nope/"}],
                                  arch="x86_64", releasever="9", cache_dir=cache_dir)
    assert info.value.repo_id == "x"


def test_search_and_names_through_the_processes(solver_processes, repo_defs, cache_dir):
    projects = solver_processes.search(repo_defs, arch="x86_64", releasever="9",
                                       cache_dir=cache_dir, globs=["tmux"])
    assert [p["name"] for p in projects] == ["tmux"]
    names = solver_processes.package_names(repo_defs, arch="x86_64", releasever="9",
                                           cache_dir=cache_dir, globs=["vim*"])
    assert names == ["vim-common", "vim-enhanced", "vim-filesystem"]


def test_a_dead_worker_fails_one_call_and_the_pool_recovers(repo_defs, cache_dir):
    import os
    import signal

    processes = SolverProcesses(max_workers=1)
    try:
        processes.depsolve([PackageSet(["bash"])], repo_defs, arch="x86_64", releasever="9",
                           cache_dir=cache_dir)
        [pid] = processes.worker_pids()
        os.kill(pid, signal.SIGKILL)  # as if libsolv had aborted in it
        with pytest.raises(DepsolveError) as info:
            processes.depsolve([PackageSet(["bash"])], repo_defs, arch="x86_64", releasever="9",
                               cache_dir=cache_dir)
        assert "died" in str(info.value)
        [packages] = processes.depsolve([PackageSet(["bash"])], repo_defs, arch="x86_64",
                                        releasever="9", cache_dir=cache_dir)
        assert "bash" in [p["name"] for p in packages]
    finally:
        processes.close()
