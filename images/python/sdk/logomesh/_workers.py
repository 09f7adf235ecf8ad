"""The thread pool that runs plain ``def`` handlers."""
from __future__ import annotations

import asyncio
import collections
import queue
import threading
from typing import Any, Callable, Deque, List, Optional, Tuple

#: What ``fn`` returns (with ``done``) when nothing is left for the loop: its future is then
#: resolved at the loop's next reap, without a wake-up of the loop's thread of its own.
QUIET = object()


class Workers:
    """A small pool of daemon threads for plain ``def`` handlers. Lighter than
    concurrent.futures (no Future per task, results posted straight to the loop), and its
    threads never hold up the interpreter's exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int) -> None:
        self._loop = loop
        self._max = max(1, max_workers)
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: List[threading.Thread] = []
        # Futures of QUIET runs, resolved by reap() on the loop's next turn that calls it.
        self._finished: Deque[asyncio.Future] = collections.deque()
        #: Set on the loop when something waits for the futures (a shutdown's drain): a QUIET
        #: run then wakes the loop to reap at once.
        self.wake = False

    def submit(self, fn: Callable, *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` in a worker; the future has its result or its exception."""
        return self.run(fn, args, None)

    def run(self, fn: Callable, args: Tuple[Any, ...], done: Optional[Callable[[Any, Optional[BaseException]], None]]) -> asyncio.Future:
        """Run ``fn(*args)`` in a worker. With ``done``: the worker posts one callback to
        the loop, which calls ``done(result, exception)`` and then resolves the future with
        None (what a caller would do on the future's resolution, one turn of the loop sooner).
        When ``fn`` returns QUIET, no callback is posted: the future waits for reap()."""
        fut = self._loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._max:
                t = threading.Thread(target=self._work, name=f"logomesh-{len(self._threads) + 1}", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put((fut, fn, args, done))
        return fut

    def _work(self) -> None:
        q = self._queue
        post = self._loop.call_soon_threadsafe
        while True:
            item = q.get()
            if item is None:
                return
            fut, fn, args, done = item
            try:
                result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = (set_exception, fut, e) if done is None else (_finish, fut, done, None, e)
            else:
                if result is QUIET and done is not None:
                    # The answer is out: the loop needs no wake-up for this run (on a busy host
                    # each one waits for a CPU, and takes the GIL from the next handler).
                    self._finished.append(fut)
                    del item, fut, fn, args, done, result
                    with self._lock:
                        self._idle += 1
                    if self.wake:  # read after the append: a drain that set it reaps this one
                        try:
                            post(self.reap)
                        except RuntimeError:
                            return
                    continue
                outcome = (set_result, fut, result) if done is None else (_finish, fut, done, result, None)
            try:
                post(*outcome)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return
            del item, fut, fn, args, done, outcome
            with self._lock:
                self._idle += 1

    def reap(self) -> None:
        """On the loop: resolve the futures of the QUIET runs that ended."""
        finished = self._finished
        while finished:
            fut = finished.popleft()
            if not fut.done():
                fut.set_result(None)

    @property
    def has_finished(self) -> bool:
        return bool(self._finished)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def _finish(fut: asyncio.Future, done: Callable[[Any, Optional[BaseException]], None], result: Any, exc: Optional[BaseException]) -> None:
    if fut.done():
        return  # cancelled (a shutdown's grace ran out): nobody takes the outcome any more
    try:
        done(result, exc)
    finally:
        if not fut.done():
            fut.set_result(None)


def set_result(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
