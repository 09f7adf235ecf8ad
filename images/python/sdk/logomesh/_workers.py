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
    threads never hold up the interpreter's exit.

    Each thread waits on a queue of its own, and a run goes to the thread that went idle
    last: one thread woken per run, and the same warm one while runs come one at a time. With
    one queue for all (as before), a put sometimes woke a second idle thread too, which found
    nothing and slept again (strace of an echo plugin)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int,
                 on_end: Optional[Callable[[asyncio.Future], None]] = None) -> None:
        self._loop = loop
        #: Called on the loop with the future of every run() with ``done`` once it is resolved:
        #: the caller's books closed in the same turn of the loop. A done callback on the future
        #: would be scheduled for the next turn instead: one more pass of the loop (and an
        #: epoll_wait during which a worker took the GIL) per call.
        self._on_end = on_end
        self._max = max(1, max_workers)
        self._lock = threading.Lock()
        # Under _lock: the idle threads' queues, the one idle last on top; runs no thread was
        # free for, taken by the next thread that finishes one.
        self._idle: List["queue.SimpleQueue"] = []
        self._waiting: Deque[Tuple[Any, ...]] = collections.deque()
        self._queues: List["queue.SimpleQueue"] = []
        # Futures of QUIET runs, resolved by reap() on the loop's next turn that calls it.
        self._finished: Deque[asyncio.Future] = collections.deque()
        #: Set on the loop when something waits for the futures (a shutdown's drain): a QUIET
        #: run then wakes the loop to reap at once.
        self.wake = False
        # Runs handed to their threads just before the loop blocks (see _hand_over_at_select).
        self._deferred: List[Tuple["queue.SimpleQueue", Tuple[Any, ...]]] = []
        self._selector: Any = None
        self._hook: Optional[Callable[..., Any]] = None
        self._hand_over_at_select()

    def _hand_over_at_select(self) -> None:
        """Hand runs to the threads when the loop is about to wait (its selector's select),
        not at once. A thread woken at once wants the GIL while the loop's thread still holds
        it (the rest of the frame's parsing, the loop's own books): it sleeps again on the GIL
        and is woken a second time when the loop waits, two wake-ups and a contended mutex
        per call (strace of an echo plugin). Handed over as the loop lets go of the GIL, the
        thread mostly finds it free. A loop without a selector (not asyncio's default on
        Linux) hands runs over at once."""
        selector = getattr(self._loop, "_selector", None)
        select = getattr(selector, "select", None)
        if select is None:
            return
        flush = self._flush

        def select_after_handing_over(timeout: Optional[float] = None) -> Any:
            flush()
            return select(timeout)

        self._selector, self._hook = selector, select_after_handing_over
        selector.select = select_after_handing_over

    def _hooked(self) -> bool:
        return self._hook is not None and self._selector.__dict__.get("select") is self._hook

    def _flush(self) -> None:
        """On the loop: wake the threads of the runs deferred since its last wait, in order."""
        deferred = self._deferred
        if deferred:
            self._deferred = []
            for q, item in deferred:
                q.put(item)

    def submit(self, fn: Callable, *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` in a worker; the future has its result or its exception."""
        return self.run(fn, args, None)

    def run(self, fn: Callable, args: Tuple[Any, ...], done: Optional[Callable[[Any, Optional[BaseException]], None]]) -> asyncio.Future:
        """Run ``fn(*args)`` in a worker. With ``done``: the worker posts one callback to
        the loop, which calls ``done(result, exception)`` and then resolves the future with
        None (what a caller would do on the future's resolution, one turn of the loop sooner).
        When ``fn`` returns QUIET, no callback is posted: the future waits for reap().
        On the loop's thread only."""
        fut = self._loop.create_future()
        item = (fut, fn, args, done)
        q: Optional["queue.SimpleQueue"] = None
        with self._lock:
            if self._idle:
                q = self._idle.pop()
            elif len(self._queues) < self._max:
                q = queue.SimpleQueue()
                self._queues.append(q)
                threading.Thread(target=self._work, args=(q,), name=f"logomesh-{len(self._queues)}", daemon=True).start()
            else:
                self._waiting.append(item)  # every thread is busy: the first to finish takes it
        if q is not None:
            if self._hooked():
                self._deferred.append((q, item))
            else:
                self._flush()  # the hook is gone (the loop's selector replaced): nothing waits for it
                q.put(item)
        return fut

    def _work(self, q: "queue.SimpleQueue") -> None:
        post = self._loop.call_soon_threadsafe
        item = q.get()
        while item is not None:
            outcome = self._run_one(item)
            del item
            # Idle (or on to a waiting run) before the outcome reaches the loop: the loop's
            # next run, which that outcome may prompt, finds this thread, not a new one.
            with self._lock:
                if self._waiting:
                    item = self._waiting.popleft()
                else:
                    item = None
                    self._idle.append(q)
            if outcome is not None:
                try:
                    post(*outcome)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    return
                del outcome
            if item is None:
                item = q.get()

    def _run_one(self, item: Tuple[Any, ...]) -> Optional[Tuple[Any, ...]]:
        """Run one item: what to post to the loop for it, or None when nothing is."""
        fut, fn, args, done = item
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            return (set_exception, fut, e) if done is None else (_finish, fut, done, None, e, self._on_end)
        if result is QUIET and done is not None:
            # The answer is out: the loop needs no wake-up for this run (on a busy host
            # each one waits for a CPU, and takes the GIL from the next handler).
            self._finished.append(fut)
            # Read after the append: a drain that set it reaps this one.
            return (self.reap,) if self.wake else None
        return (set_result, fut, result) if done is None else (_finish, fut, done, result, None, self._on_end)

    def reap(self) -> None:
        """On the loop: resolve the futures of the QUIET runs that ended."""
        finished = self._finished
        on_end = self._on_end
        while finished:
            fut = finished.popleft()
            if not fut.done():
                fut.set_result(None)
            if on_end is not None:
                on_end(fut)

    @property
    def has_finished(self) -> bool:
        return bool(self._finished)

    def shutdown(self) -> None:
        # Runs handed over before the threads' end, as if they had been queued at once; and
        # the loop's selector as it was (the loop may serve again, with another pool).
        self._flush()
        if self._hooked():
            del self._selector.select
        self._selector = self._hook = None
        for q in self._queues:
            q.put(None)


def _finish(fut: asyncio.Future, done: Callable[[Any, Optional[BaseException]], None], result: Any, exc: Optional[BaseException],
            on_end: Optional[Callable[[asyncio.Future], None]]) -> None:
    try:
        if fut.done():
            return  # cancelled (a shutdown's grace ran out): nobody takes the outcome any more
        try:
            done(result, exc)
        finally:
            if not fut.done():
                fut.set_result(None)
    finally:
        if on_end is not None:
            on_end(fut)


def set_result(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
