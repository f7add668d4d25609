"""The thread pools that run blocking work (database, hashing, Pillow, file assembly) off the event loop.

Two lanes of `threads` threads each: reads (GETs) and everything else. A writer waiting for a lock
(SQLite's busy_timeout, a row lock) holds its thread; with one pool, a few of them made every GET
wait too. Every job goes through models.run_job, which replaces connections the database dropped and
turns a held lock, a full disk or a stop's cut-off into an answer the client can act on. A job runs in a
copy of its submitter's context, so its log lines carry the request's id (logs.request_id).
"""
import asyncio
import contextlib
import contextvars
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import models
from models import run_job
from services.errors import Stopping


class Workers:
    def __init__(self, threads):
        self.threads = threads
        self._writes = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="zgld-worker")
        self._reads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="zgld-reader")
        self._closed = False

    async def submit_async(self, fn, *args, read_only=False, **kwargs):
        """Run `fn` in a worker thread; `read_only` work (GETs) goes to the read lane."""
        if models.commit_gate.closed:  # a stop cut calls off: nothing new starts
            raise Stopping()
        pool = self._reads if read_only else self._writes
        return await asyncio.wrap_future(pool.submit(contextvars.copy_context().run, run_job, fn, *args, **kwargs))

    def submit(self, fn, *args, **kwargs):
        """Background work and clean-up; once the pools are shut down (the end of a stop), clean-up such
        as dropping a cut-off chunk runs right here rather than failing."""
        if self._closed:
            future = Future()
            future.set_result(fn(*args, **kwargs))
            return future
        return self._writes.submit(contextvars.copy_context().run, run_job, fn, *args, **kwargs)

    def backlog(self) -> dict[str, int]:
        """Jobs waiting for a thread, per lane (/healthz, /metrics). The executor's own queue: counting
        them ourselves would cost every job a lock."""
        return {"reads": self._reads._work_queue.qsize(), "writes": self._writes._work_queue.qsize()}

    def run_in_every_thread(self, fn, timeout=10):
        """Run `fn` once in each worker thread of both lanes (e.g. to close its database connection).

        A barrier keeps each task in its thread until all have started, so no thread runs two."""
        for pool in (self._writes, self._reads):
            barrier = threading.Barrier(self.threads)

            def task(barrier=barrier):
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout)
                fn()

            for future in [pool.submit(task) for _ in range(self.threads)]:
                future.result(timeout + 5)

    def shutdown(self, close=None):
        if close is not None:
            self.run_in_every_thread(close)
        self._closed = True
        for pool in (self._writes, self._reads):
            pool.shutdown(wait=True)

    def abandon(self):
        """A stop that cut work off: drop queued jobs and do not wait for running ones (the commit gate
        keeps them from committing; the process exits without joining their threads)."""
        self._closed = True
        for pool in (self._writes, self._reads):
            pool.shutdown(wait=False, cancel_futures=True)
