"""The thread pool that runs plain ``def`` handlers."""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable, List


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
        fut = self._loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._max:
                t = threading.Thread(target=self._work, name=f"logomesh-{len(self._threads) + 1}", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put((fut, fn, args))
        return fut

    def _work(self) -> None:
        q = self._queue
        post = self._loop.call_soon_threadsafe
        while True:
            item = q.get()
            if item is None:
                return
            fut, fn, args = item
            try:
                result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                try:
                    post(set_exception, fut, e)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    return
            else:
                try:
                    post(set_result, fut, result)
                except RuntimeError:
                    return
            del item, fut, fn, args
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def set_result(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
