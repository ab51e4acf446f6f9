"""Face crops of recent analyses, kept in memory for a few minutes so consent can follow the upload."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np


class CropCache:
    """Bounded LRU of analysis id → face crops, each entry dropped after ``ttl_s`` seconds."""

    def __init__(self, max_bytes: int, ttl_s: float) -> None:
        self.max_bytes, self.ttl_s = max_bytes, ttl_s
        self._entries: OrderedDict[str, tuple[float, list[np.ndarray]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, analysis_id: str, crops: list[np.ndarray]) -> None:
        """Remember the crops of one analysis, evicting the oldest entries beyond the byte budget."""
        size = sum(crop.nbytes for crop in crops)
        if not crops or size > self.max_bytes:
            return
        with self._lock:
            self._drop(analysis_id)
            self._entries[analysis_id] = (time.monotonic() + self.ttl_s, crops)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def get(self, analysis_id: str, face_index: int) -> np.ndarray | None:
        """The crop of one face, or None when it expired, was evicted or never existed."""
        with self._lock:
            entry = self._entries.get(analysis_id)
            if entry is None or entry[0] < time.monotonic():
                self._drop(analysis_id)
                return None
            crops = entry[1]
            return crops[face_index] if 0 <= face_index < len(crops) else None

    def discard(self, analysis_id: str) -> None:
        """Forget an analysis (called when it is deleted)."""
        with self._lock:
            self._drop(analysis_id)

    def _drop(self, analysis_id: str) -> None:
        entry = self._entries.pop(analysis_id, None)
        if entry is not None:
            self._bytes -= sum(crop.nbytes for crop in entry[1])
