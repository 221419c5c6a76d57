"""The hooks' ETag cache: conditional GETs (``etag=True``) answer from it on 304."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from airflow_fb_async.hooks.urls import AUTH_FIELDS

if TYPE_CHECKING:
    from collections.abc import Mapping

ETAG_CACHE_SIZE = 256

CacheKey = tuple[str, str, tuple[tuple[str, str], ...]]


class EtagCache:
    """Bounded, thread-safe LRU of ``key -> (etag, body)``; keys never contain credentials."""

    def __init__(self, maxsize: int = ETAG_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[CacheKey, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(method: str, url: str, params: Mapping[str, str]) -> CacheKey:
        clean = tuple(sorted((k, v) for k, v in params.items() if k not in AUTH_FIELDS))
        return (method.upper(), url, clean)

    def get(self, key: CacheKey) -> tuple[str, Any] | None:
        """``(etag, body)``; the body is a copy: callers may change what they get."""
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
        return None if hit is None else (hit[0], copy.deepcopy(hit[1]))

    def put(self, key: CacheKey, etag: str, body: Any) -> None:
        """Store a copy of ``body`` (the caller keeps and may change the original)."""
        body = copy.deepcopy(body)
        with self._lock:
            self._data[key] = (etag, body)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
