"""`python -m tasks.flower`: Flower for the configured broker (`make flower`).

Flower watches the queues and tasks of our Celery app: task names `compose.depsolve`,
`compose.build`, `compose.test`, `compose.upload.<target>`, arguments a compose id only.  It turns
task events on in the workers when it starts (they are off otherwise: each costs a broker round
trip).  It needs a broker with remote control, i.e. Redis: the embedded SQLite transport has none.
Listens on 127.0.0.1:5555 unless `--address`/`--port` say otherwise.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from core import config as config_mod
    from tasks import celery_app

    config = config_mod.load()
    if celery_app.is_embedded(config):
        print("flower: the embedded broker (empty broker_url) has no remote control for Flower; "
              "set broker_url to a Redis URL", file=sys.stderr)
        return 2
    app = celery_app.configure(config)
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--address") for a in args):
        args.append("--address=127.0.0.1")
    app.start(["flower", *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
