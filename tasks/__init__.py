"""Celery tasks of the compose chain: depsolve, build and upload, each on its own queue."""
