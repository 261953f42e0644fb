"""Many callers share one engine: requests wait in a bounded queue and run together in batches.

A server's coroutines (and gradio's threads) call ``submit``; one worker thread owns the engine
and runs the oldest waiting request together with every other waiting request for the same
model and the same decoding settings, up to ``max_batch`` of them, so concurrent clients are
batched in the engine rather than run one after another. Tokens stream back to each request as
the engine makes them (``Request.events``), and the final ``Generation`` ends the stream.

- The queue is bounded (``max_queue`` waiting requests): ``submit`` raises ``QueueFull`` past
  it, and the server answers 429.
- A request whose client went away before its batch started is dropped (``Request.cancel``);
  one already in a batch runs to the end of that batch (the engine's call is not interruptible)
  and its tokens are discarded.
- An engine error fails the requests of that batch, not the worker.
- A batch is formed after a short wait (``batch_wait``, 10 ms) while requests keep arriving, so
  clients that send together (or come back together when their batch ends) decode together.
- The engine is asked for tokens one by one (``on_token``) only when a request of the batch streams.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The waiting queue is at its bound; try again later."""


@dataclass(eq=False)
class Request:
    """One prompt for one model, its settings, and the stream of what the engine gives back."""

    key: Hashable  # requests with equal keys may share a batch
    engine: Any
    prompt: Any
    settings: Any
    _sink: Any = None  # called from the worker thread with each event
    stream: bool = True  # wants text deltas; else only the Generation
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """One worker thread running the engines' batches for every caller."""

    def __init__(self, max_batch: int = 32, max_queue: int = 256, batch_wait: float = 0.01):
        if max_batch < 1 or max_queue < 0 or batch_wait < 0:
            raise ValueError("max_batch must be >= 1, max_queue and batch_wait >= 0")
        self.max_batch, self.max_queue, self.batch_wait = max_batch, max_queue, batch_wait
        self._waiting: deque[Request] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.running = 0  # requests in the batch now running
        self.batches = 0  # batches run so far (tests and logs read it)
        self.largest_batch = 0
        self._thread = threading.Thread(target=self._work, name="cama-scheduler", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=60)

    # -- callers -------------------------------------------------------------------------------
    def submit(self, engine, prompt, settings, key: Hashable = None, sink=None, stream: bool = True) -> Request:
        """Queue one prompt; ``sink(event)`` gets each text delta (if ``stream``), then the Generation
        (or an exception). Called from the worker thread: keep it short."""
        req = Request((key, settings), engine, prompt, settings, sink, stream)
        with self._cv:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting (the bound is {self.max_queue})")
            self._waiting.append(req)
            self._cv.notify()
        return req

    async def stream(self, engine, prompt, settings, key: Hashable = None) -> AsyncIterator:
        """Submit from a coroutine; yield text deltas, then the Generation. Raises QueueFull at once."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        req = self.submit(engine, prompt, settings, key, lambda e: loop.call_soon_threadsafe(queue.put_nowait, e))
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if not isinstance(event, str):
                    return
        finally:
            req.cancel()

    def iterate(self, engine, prompt, settings, key: Hashable = None) -> Iterator:
        """Submit from a thread (gradio, the terminal); yield text deltas, then the Generation."""
        import queue as queue_module

        q: queue_module.SimpleQueue = queue_module.SimpleQueue()
        req = self.submit(engine, prompt, settings, key, q.put)
        try:
            while True:
                event = q.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if not isinstance(event, str):
                    return
        finally:
            req.cancel()

    # -- the worker ----------------------------------------------------------------------------
    def _next_batch(self) -> list[Request] | None:
        with self._cv:
            while True:
                while self._waiting and self._waiting[0].cancelled:
                    self._waiting.popleft()
                if not self._waiting:
                    if self._closed:
                        return None
                    self._cv.wait()
                    continue
                deadline = time.monotonic() + 5 * self.batch_wait
                while len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    before = len(self._waiting)
                    self._cv.wait(min(self.batch_wait, left))
                    if len(self._waiting) == before:  # nobody came in a while: go
                        break
                key = self._waiting[0].key
                batch = [r for r in self._waiting if r.key == key and not r.cancelled][: self.max_batch]
                chosen = set(map(id, batch))
                self._waiting = deque(r for r in self._waiting if id(r) not in chosen and not r.cancelled)
                if batch:
                    self.running = len(batch)
                    return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))

            def on_token(i: int, delta: str, batch=batch) -> None:
                if batch[i].stream and not batch[i].cancelled:
                    batch[i]._sink(delta)

            streaming = any(r.stream for r in batch)
            try:
                gens = batch[0].engine.generate([r.prompt for r in batch], batch[0].settings,
                                                on_token=on_token if streaming else None)  # fmt: skip
            except Exception as e:  # noqa: BLE001 - fail this batch's requests, keep serving
                log.exception("generation failed for a batch of %d", len(batch))
                for r in batch:
                    r._sink(e)
            else:
                for r, g in zip(batch, gens, strict=True):
                    r._sink(g)
            finally:
                self.running = 0
