"""Run blocking disk calls in gevent's threadpool so the event loop keeps serving sessions."""
from __future__ import annotations

import gevent


def blocking(fn, *args):
    """Call ``fn(*args)`` in the hub's threadpool; the calling greenlet waits, others run."""
    return gevent.get_hub().threadpool.apply(fn, args)
