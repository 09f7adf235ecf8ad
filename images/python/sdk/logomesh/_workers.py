"""The thread pool that runs plain ``def`` handlers."""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable, List, Optional, Tuple


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

    def submit(self, fn: Callable, *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` in a worker; the future has its result or its exception."""
        return self.run(fn, args, None)

    def run(self, fn: Callable, args: Tuple[Any, ...], done: Optional[Callable[[Any, Optional[BaseException]], None]]) -> asyncio.Future:
        """Run ``fn(*args)`` in a worker. With ``done``: the worker posts one callback to
        the loop, which calls ``done(result, exception)`` and then resolves the future with
        None (what a caller would do on the future's resolution, one turn of the loop sooner)."""
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
                outcome = (set_result, fut, result) if done is None else (_finish, fut, done, result, None)
            try:
                post(*outcome)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return
            del item, fut, fn, args, done, outcome
            with self._lock:
                self._idle += 1

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
