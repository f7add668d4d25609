"""The thread pool that runs blocking work (database, hashing, Pillow, file assembly) off the event loop."""
import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor


class Workers:
    def __init__(self, threads):
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="zgld-worker")

    async def submit_async(self, fn, *args, **kwargs):
        return await asyncio.wrap_future(self._pool.submit(fn, *args, **kwargs))

    def submit(self, fn, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def run_in_every_thread(self, fn, timeout=10):
        """Run `fn` once in each worker thread (e.g. to close its database connection).

        A barrier keeps each task in its thread until all have started, so no thread runs two."""
        barrier = threading.Barrier(self.threads)

        def task():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout)
            fn()

        for future in [self._pool.submit(task) for _ in range(self.threads)]:
            future.result(timeout + 5)

    def shutdown(self, close=None):
        if close is not None:
            self.run_in_every_thread(close)
        self._pool.shutdown(wait=True)
