"""Dynamic batching: face crops from many concurrent callers share one model call.

Callers block on a real OS-level event, so they must be real threads (the web app calls
in through eventlet.tpool); the batch runs on one dedicated OS thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .concurrency import queue, threading

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """Raised to callers once the batcher has been shut down."""


@dataclass
class _Request:
    crops: list[np.ndarray]
    done: object = field(default_factory=lambda: threading.Event())
    result: np.ndarray | None = None
    error: BaseException | None = None


class DynamicBatcher:
    """Collects crops until ``max_batch`` or ``max_wait_ms`` after the first arrives, then runs one batch."""

    def __init__(self, classify: Callable[[list[np.ndarray]], np.ndarray], max_batch: int = 32,
                 max_wait_ms: float = 4.0, max_queue: int = 256):
        self._classify = classify
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        # Bounded: when the model cannot keep up, callers get an error instead of an ever-growing delay.
        self._queue: "queue.Queue[_Request | None]" = queue.Queue(maxsize=max_queue)
        self._closed = False
        self.batches_run = 0
        self._thread = threading.Thread(target=self._serve, name="emotion-batcher", daemon=True)
        self._thread.start()

    def classify(self, crops: list[np.ndarray], timeout_s: float = 30.0) -> np.ndarray:
        """Probabilities for ``crops``; blocks the calling (real) thread until its batch has run."""
        if not crops:
            return self._classify([])
        if self._closed:
            raise BatcherClosed("the classifier is shutting down")
        request = _Request(list(crops))
        try:
            self._queue.put(request, timeout=timeout_s)
        except queue.Full:
            raise TimeoutError("the classifier queue is full") from None
        if not request.done.wait(timeout_s):
            raise TimeoutError("the classifier did not answer in time")
        if request.error is not None:
            raise request.error
        return request.result

    def close(self) -> None:
        """Stop the batching thread after the queued requests are answered."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            pending, count = [first], len(first.crops)
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # let the outer loop see the stop signal after this batch
                    break
                pending.append(item)
                count += len(item.crops)
            self._run(pending)

    def _run(self, pending: list[_Request]) -> None:
        crops = [crop for request in pending for crop in request.crops]
        try:
            probabilities = self._classify(crops)
        except Exception as error:  # one bad batch answers its own callers; the thread lives on
            log.exception("classifier batch of %d crops failed", len(crops))
            for request in pending:
                request.error = error
                request.done.set()
            return
        self.batches_run += 1
        offset = 0
        for request in pending:
            request.result = probabilities[offset:offset + len(request.crops)]
            offset += len(request.crops)
            request.done.set()
