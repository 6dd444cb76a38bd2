"""Running the depsolver from threads: a reusable pool of warm solver processes.

libsolv pools are not thread-safe and the binding holds the GIL while it solves, so the API's
request threads must not share a pool or solve in-process: one slow `projects/list` would stall
every other request.  `SolverProcesses` sends each call to a worker process (forkserver: no
inherited sockets, locks or Flask state) that keeps its loaded pools between calls, keyed by
repositories + repomd.xml checksums, so a warm `blueprints/depsolve` costs one solve plus a
pickle round trip.

    from depsolve.processes import shared
    packages = shared().depsolve([PackageSet(["tmux"])], repos, arch="x86_64",
                                 releasever="9", cache_dir=cache_dir)

A worker that dies (libsolv aborts on some inputs) breaks only the call in flight: the pool is
rebuilt and the caller gets a DepsolveError.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from depsolve.errors import DepsolveError

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2
# Modules a fresh worker imports before its first call, so the first request is not also
# paying for the imports.
_PRELOAD = ["depsolve", "depsolve.backend", "depsolve.metadata"]


def _call(function: str, args: tuple, kwargs: dict) -> Any:
    """Runs in the worker: the same public functions the in-process callers use."""
    import depsolve as depsolve_api

    if function not in ("depsolve", "search", "search_page", "package_names"):
        raise ValueError(f"not a depsolve function: {function}")
    return getattr(depsolve_api, function)(*args, **kwargs)


def _warm_worker(level: int) -> None:
    logging.basicConfig(level=level)
    from depsolve import backend

    backend.current()  # choose (and log) the backend before the first request needs it
    try:
        import solv  # noqa: F401  (the import is most of a cold call's fixed cost)
    except ImportError:
        pass


class SolverProcesses:
    """A process pool for `depsolve`, `search`, `search_page` and `package_names`, safe to call
    from threads."""

    def __init__(self, max_workers: int = DEFAULT_WORKERS, start_method: str = "forkserver"
                 ) -> None:
        self.max_workers = max(1, int(max_workers))
        self.start_method = start_method
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._pid = 0

    def _get_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            # A forked parent's pool is not usable from the child (gunicorn forks workers).
            if self._executor is None or self._pid != os.getpid():
                context = multiprocessing.get_context(self.start_method)
                if self.start_method == "forkserver":
                    context.set_forkserver_preload(_PRELOAD)
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.max_workers, mp_context=context,
                    initializer=_warm_worker, initargs=(logging.getLogger().level,))
                self._pid = os.getpid()
            return self._executor

    def _discard(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def call(self, function: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        executor = self._get_executor()
        try:
            future = executor.submit(_call, function, args, kwargs)
            return future.result(timeout=timeout)
        except BrokenProcessPool as exc:
            self._discard(executor)
            log.error("depsolve worker process died: %s", exc)
            raise DepsolveError(f"the depsolver process died while running {function}; "
                                "the request was not completed") from None
        except concurrent.futures.TimeoutError:
            raise DepsolveError(f"{function} took longer than {timeout} s") from None

    def depsolve(self, *args: Any, timeout: float | None = None, **kwargs: Any
                 ) -> list[list[dict[str, Any]]]:
        return self.call("depsolve", *args, timeout=timeout, **kwargs)

    def search(self, *args: Any, timeout: float | None = None, **kwargs: Any
               ) -> list[dict[str, Any]]:
        return self.call("search", *args, timeout=timeout, **kwargs)

    def search_page(self, *args: Any, timeout: float | None = None, **kwargs: Any
                    ) -> tuple[int, list[dict[str, Any]]]:
        return self.call("search_page", *args, timeout=timeout, **kwargs)

    def package_names(self, *args: Any, timeout: float | None = None, **kwargs: Any
                      ) -> list[str]:
        return self.call("package_names", *args, timeout=timeout, **kwargs)

    def worker_pids(self) -> list[int]:
        """The live workers (tests check reuse; nothing else should need this)."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return sorted(processes)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._pid == os.getpid():
            executor.shutdown(wait=True, cancel_futures=True)


_shared: SolverProcesses | None = None
_shared_lock = threading.Lock()


def shared(max_workers: int | None = None) -> SolverProcesses:
    """The process-wide solver pool the API uses; created on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            workers = max_workers or int(os.environ.get("CELERY_COMPOSER_DEPSOLVE_WORKERS",
                                                        DEFAULT_WORKERS))
            _shared = SolverProcesses(max_workers=workers)
        return _shared
