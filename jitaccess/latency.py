"""Latency histograms that every web process adds to, read by GET /metrics on any host.

The other metrics are read from the database at scrape time; a duration exists only while the
request runs, so it is observed in process memory and added to Redis (``REDIS_URL``) about once a
second, in one pipelined round trip. A scrape reads the sums, so every host answers the same
numbers, as for the rest of /metrics. What a process observed in its last second is lost if it is
killed (a graceful stop flushes it); a Redis outage drops observations, never a request.

Without ``REDIS_URL`` (the embedded development set-up, one process) the sums stay in memory.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client.core import HistogramMetricFamily

logger = logging.getLogger(__name__)

# Seconds; the reveal target is a p99 of 50 ms, so the buckets are dense around it.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FLUSH_SECONDS = 1.0
KEY_PREFIX = "jitaccess:metrics:latency:"
_SEP = "\t"  # between label values and the bucket in a Redis hash field; never in a label

HTTP = "jitaccess_http_request_duration_seconds"
REVEAL = "jitaccess_reveal_duration_seconds"
HISTOGRAMS = {
    HTTP: ("Time to answer an HTTP request, by view, method and status class.", ("view", "method", "status")),
    REVEAL: ("Time to answer a reveal (API or page), audit write included, by HTTP status.", ("status",)),
}
# The reveal views: the API action and the grant page's form.
REVEAL_VIEWS = frozenset({"secret-reveal", "approvals:secret-reveal"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# (metric, label values) -> per-bucket counts (not cumulative; the last is +Inf) and the sum.
Batch = dict[tuple[str, tuple[str, ...]], tuple[list[int], float]]


def _empty() -> tuple[list[int], float]:
    """No observations yet: a zero count per bucket (the last is +Inf) and a zero sum."""
    return [0] * (len(BUCKETS) + 1), 0.0


def _bucket_index(seconds: float) -> int:
    for index, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return index
    return len(BUCKETS)


@cache
def _redis(url: str) -> redis.Redis:
    # Short timeouts: a slow Redis must not hold the request that happens to flush.
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


class RedisTotals:
    """The sums of every process, in one Redis hash per histogram."""

    def __init__(self, url: str) -> None:
        self.url = url

    def add(self, batch: Batch) -> None:
        with _redis(self.url).pipeline(transaction=False) as pipe:
            for (metric, labels), (counts, total) in batch.items():
                key, prefix = KEY_PREFIX + metric, _SEP.join(labels) + _SEP
                for index, count in enumerate(counts):
                    if count:
                        pipe.hincrby(key, f"{prefix}{index}", count)
                pipe.hincrbyfloat(key, f"{prefix}sum", total)
            pipe.execute()

    def read(self, metric: str) -> dict[tuple[str, ...], tuple[list[int], float]]:
        fields = _redis(self.url).hgetall(KEY_PREFIX + metric)
        found: dict[tuple[str, ...], tuple[list[int], float]] = {}
        for raw_field, raw_value in fields.items():
            *labels, slot = raw_field.decode().split(_SEP)
            counts, total = found.get(tuple(labels), _empty())
            if slot == "sum":
                total = float(raw_value)
            elif slot.isdigit() and int(slot) <= len(BUCKETS):
                counts[int(slot)] = int(raw_value)
            found[tuple(labels)] = (counts, total)
        return found

    def clear(self) -> None:
        _redis(self.url).delete(*(KEY_PREFIX + metric for metric in HISTOGRAMS))


class LocalTotals:
    """This process's sums only: the embedded set-up runs one web process."""

    def __init__(self) -> None:
        self._totals: Batch = {}
        self._lock = threading.Lock()

    def add(self, batch: Batch) -> None:
        with self._lock:
            for key, (counts, total) in batch.items():
                kept, kept_total = self._totals.get(key, _empty())
                self._totals[key] = ([a + b for a, b in zip(kept, counts, strict=True)], kept_total + total)

    def read(self, metric: str) -> dict[tuple[str, ...], tuple[list[int], float]]:
        with self._lock:
            return {labels: (list(c), t) for (name, labels), (c, t) in self._totals.items() if name == metric}

    def clear(self) -> None:
        with self._lock:
            self._totals.clear()


class Recorder:
    """Observations of this process, added to the shared totals at most once a ``FLUSH_SECONDS``."""

    def __init__(self, totals: RedisTotals | LocalTotals, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.totals = totals
        self._monotonic = monotonic
        self._pending: Batch = {}
        self._lock = threading.Lock()
        self._last_flush = monotonic()
        self._last_warning = float("-inf")

    def observe(self, metric: str, labels: tuple[str, ...], seconds: float) -> None:
        with self._lock:
            counts, total = self._pending.get((metric, labels), _empty())
            counts[_bucket_index(seconds)] += 1
            self._pending[(metric, labels)] = (counts, total + seconds)
            due = self._monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._last_flush = self._monotonic()
        if not batch:
            return
        try:
            self.totals.add(batch)
        except redis.RedisError:
            # At most one line a minute: an outage would otherwise log once per second per process.
            if self._monotonic() - self._last_warning >= 60:
                self._last_warning = self._monotonic()
                logger.warning("metrics: Redis did not take the latency observations; they are dropped")

    def collect(self) -> Iterator[HistogramMetricFamily]:
        self.flush()
        for metric, (documentation, label_names) in HISTOGRAMS.items():
            family = HistogramMetricFamily(metric, documentation, labels=label_names)
            for labels, (counts, total) in sorted(self.totals.read(metric).items()):
                cumulative, buckets = 0, []
                for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                    cumulative += count
                    buckets.append((bound, cumulative))
                family.add_metric(list(labels), buckets, total)
            yield family


@cache
def recorder() -> Recorder:
    """This process's recorder, on the totals the settings name (built on first use, not at import)."""
    built = Recorder(RedisTotals(settings.REDIS_URL) if settings.REDIS_URL else LocalTotals())
    atexit.register(built.flush)
    return built


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


class RequestLatencyMiddleware:
    """Times every request, outermost, so the whole middleware stack is inside the figure."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match: Any = getattr(request, "resolver_match", None)
        # Named views keep the label set small; an unknown path is one label, not one per path.
        view = (match.view_name or "unnamed") if match else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        observations = recorder()
        observations.observe(HTTP, (view, method, _status_class(response.status_code)), elapsed)
        if view in REVEAL_VIEWS and method == "POST":
            observations.observe(REVEAL, (str(response.status_code),), elapsed)
        return response
