"""The Celery side of the benchmark: one app, one no-op task (Redis broker and backend)."""

import os

from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    # Everything else stays at Celery's defaults: task_acks_late=False (a message is
    # acknowledged when the worker receives it), prefetch multiplier 4, JSON.
)


@app.task(name="noop")
def noop():
    return None
