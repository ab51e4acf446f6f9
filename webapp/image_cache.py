"""Face crops of recent analyses, kept for a few minutes so consent can follow the upload.

In this process's memory by default; in Redis when several web processes must share them (CROP_CACHE_URL).
"""

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


class RedisCropCache:
    """The same cache in Redis, so consent given to any web process finds crops made by another.

    One hash per analysis (face index → the crop's raw uint8 bytes, plus its shape), expiring after ``ttl_s``;
    Redis's own memory policy bounds the total, and an entry larger than ``max_bytes`` is not kept at all.
    """

    def __init__(self, url: str, max_bytes: int, ttl_s: float, prefix: str = "emo:crops:") -> None:
        import redis  # the optional ``serve`` extra; only deployments that configure Redis need it

        self.max_bytes, self.ttl_s, self.prefix = max_bytes, ttl_s, prefix
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)

    def put(self, analysis_id: str, crops: list[np.ndarray]) -> None:
        """Remember the crops of one analysis for ``ttl_s`` seconds."""
        if not crops or sum(crop.nbytes for crop in crops) > self.max_bytes:
            return
        # Every crop of one model has the same shape (the classifier's input size).
        fields = {"shape": ",".join(str(side) for side in crops[0].shape),
                  **{str(index): np.ascontiguousarray(crop, np.uint8).tobytes() for index, crop in enumerate(crops)}}
        key = self.prefix + analysis_id
        pipe = self._redis.pipeline()
        pipe.delete(key)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, max(1, int(self.ttl_s)))
        pipe.execute()

    def get(self, analysis_id: str, face_index: int) -> np.ndarray | None:
        """The crop of one face, or None when it expired or never existed."""
        if face_index < 0:
            return None
        shape, data = self._redis.hmget(self.prefix + analysis_id, ["shape", str(face_index)])
        if shape is None or data is None:
            return None
        return np.frombuffer(data, np.uint8).reshape([int(side) for side in shape.split(b",")]).copy()

    def discard(self, analysis_id: str) -> None:
        """Forget an analysis (called when it is deleted)."""
        self._redis.delete(self.prefix + analysis_id)


def make_crop_cache(config: dict) -> CropCache | RedisCropCache:
    """Crops in Redis when CROP_CACHE_URL names one (several web processes), else in this process's memory."""
    if config.get("CROP_CACHE_URL"):
        return RedisCropCache(config["CROP_CACHE_URL"], config["IMAGE_CACHE_MAX_BYTES"],
                              config["IMAGE_CACHE_SECONDS"])
    return CropCache(config["IMAGE_CACHE_MAX_BYTES"], config["IMAGE_CACHE_SECONDS"])
