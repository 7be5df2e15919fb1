"""Prometheus metrics at GET /metrics, computed from the database and Redis when scraped.

Nothing is counted in process memory, so every web host answers the same numbers however many
web and worker processes there are (no multiprocess mode). Off unless ``JIT_METRICS_TOKEN`` is
set; the scraper sends it as ``Authorization: Bearer <token>``.

Each scrape costs a handful of indexed queries, never a scan of the audit trail:

- grants by state: one GROUP BY answered from the (state, expires_at) index; grants are few
  (one per approved request) next to audit events;
- active grants: a range of that same index (state = active, expires_at > now);
- pending requests: the (state, open_stage_group) index;
- chain length and last checkpoint: the newest row of each, by their unique ``seq`` index;
- expiry lag: the first event of the last hour by the ``at`` index, then the ``grant.expired``
  events after it by the (action, seq) index: only the last hour's expiries are read;
- reveals: counted incrementally. The shared cache keeps the counts up to a chain position
  (seq and hash); a scrape counts only the reveal events after it, by the (action, seq) index.
  The chain is append-only and its writers are serialised until commit, so every event up to
  the head a scrape reads is already visible and the counts are exact. A missing cache, or a
  chain that no longer holds the remembered hash (a restore), counts once from the start.
- queue depth: one LLEN per queue and priority, pipelined in one round trip to Redis.

The latency histograms (HTTP requests, reveals) are the exception: a duration is observed while a
request runs, so each process adds its observations to Redis and a scrape reads the sums
(jitaccess/latency.py).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from approvals.models import AccessRequest, Grant, GrantState, RequestState
from jitaccess import clock, latency
from jitaccess.audit.models import AuditCheckpoint, AuditEvent

logger = logging.getLogger(__name__)

# Where the expiry lag falls: the precise path takes seconds, the safety-net sweep up to its
# interval, anything beyond means the workers or beat were down.
LAG_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
LAG_WINDOW = timedelta(hours=1)
# Bounds one scrape even after a mass expiry; the lag of more than this many in an hour is moot.
LAG_MAX_EVENTS = 10_000

REVEAL_OUTCOMES = {
    "secret.revealed": "success",
    "secret.reveal_denied": "denied",
    "secret.reveal_failed": "failed",
}
REVEALS_CACHE_KEY = "jitaccess:metrics:reveals"


def _reveal_counts(head: tuple[int, str] | None) -> dict[str, int]:
    """Reveal attempts by outcome up to ``head`` (seq, hash), counted on from the cached position."""
    counts = dict.fromkeys(REVEAL_OUTCOMES.values(), 0)
    if head is None:
        return counts
    after = 0
    remembered = shared_cache.get(REVEALS_CACHE_KEY)
    if remembered and remembered["seq"] <= head[0]:
        still_there = AuditEvent.objects.filter(seq=remembered["seq"], hash=remembered["hash"]).exists()
        if still_there:
            after = remembered["seq"]
            counts.update(remembered["counts"])
    new = (
        AuditEvent.objects.filter(action__in=REVEAL_OUTCOMES, seq__gt=after, seq__lte=head[0])
        .values("action")
        .annotate(n=Count("seq"))
    )
    for row in new:
        counts[REVEAL_OUTCOMES[row["action"]]] += row["n"]
    shared_cache.set(REVEALS_CACHE_KEY, {"seq": head[0], "hash": head[1], "counts": counts}, timeout=None)
    return counts


def _expiry_lags(now: Any) -> list[float]:
    """Seconds between due and flipped, of the grants expired in the last hour.

    ``ended_at`` is set to ``expires_at`` (when access ended by right); the moment the grant was
    actually flipped is only in its ``grant.expired`` event, as ``lag_ms``.
    """
    cutoff = now - LAG_WINDOW
    # Time never runs backwards along the chain, so the window is a seq range.
    first = AuditEvent.objects.filter(at__gte=cutoff).order_by("at").values_list("seq", flat=True).first()
    if first is None:
        return []
    rows = AuditEvent.objects.filter(action="grant.expired", seq__gte=first).values_list("data", flat=True)
    return [max(row.get("lag_ms", 0), 0) / 1000 for row in rows[:LAG_MAX_EVENTS]]


def _histogram(name: str, doc: str, values: list[float]) -> HistogramMetricFamily:
    buckets = [(str(bound), sum(1 for value in values if value <= bound)) for bound in LAG_BUCKETS]
    buckets.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=sum(values))


def _queue_names() -> list[str]:
    queues = getattr(settings, "CELERY_TASK_QUEUES", None) or []
    names = [queue.name for queue in queues]
    return names or [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


@cache
def _broker_client() -> redis.Redis:
    # Short timeouts: a slow broker must not hold the scrape (the scraper would time out anyway).
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)


def _queue_depths() -> dict[str, int] | None:
    """Messages waiting per Celery queue, the way kombu's Redis transport stores them.

    kombu keeps a queue as one Redis list per priority step (``name`` for the default priority,
    ``name<sep><step>`` for the others); the depth is their sum.
    """
    if not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://", "unix://")):
        return None
    names = _queue_names()
    keys = [(name, name if step == 0 else f"{name}{Channel.sep}{step}") for name in names for step in PRIORITY_STEPS]
    try:
        with _broker_client().pipeline(transaction=False) as pipe:
            for _, key in keys:
                pipe.llen(key)
            lengths = pipe.execute()
    except redis.RedisError:
        logger.warning("metrics: the broker did not answer; queue depths left out", exc_info=True)
        return None
    depths = dict.fromkeys(names, 0)
    for (name, _), length in zip(keys, lengths, strict=True):
        depths[name] += length
    return depths


class JitCollector(Collector):
    """The product's own metrics, read afresh on every scrape (see the module docstring)."""

    def collect(self) -> Iterator[Metric]:
        now = clock.now()
        by_state = dict(Grant.objects.values_list("state").annotate(n=Count("id")).order_by())
        active = Grant.objects.filter(state=GrantState.ACTIVE, expires_at__gt=now).count()
        pending = AccessRequest.objects.filter(state=RequestState.PENDING).count()
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        checkpoint_at = AuditCheckpoint.objects.order_by("-seq").values_list("at", flat=True).first()

        yield CounterMetricFamily("jitaccess_grants_issued", "Grants issued.", value=sum(by_state.values()))
        yield CounterMetricFamily(
            "jitaccess_grants_expired", "Grants ended by expiry.", value=by_state.get(GrantState.EXPIRED, 0)
        )
        yield CounterMetricFamily(
            "jitaccess_grants_revoked", "Grants revoked early.", value=by_state.get(GrantState.REVOKED, 0)
        )
        yield GaugeMetricFamily("jitaccess_grants_active", "Grants active now (and not yet due).", value=active)
        yield GaugeMetricFamily("jitaccess_requests_pending", "Access requests awaiting a decision.", value=pending)
        yield _histogram(
            "jitaccess_grant_expiry_lag_seconds",
            "Delay between a grant falling due and being expired, over the grants expired in the last hour.",
            _expiry_lags(now),
        )
        yield GaugeMetricFamily(
            "jitaccess_audit_chain_length", "Events in the audit chain (the newest seq).", value=head[0] if head else 0
        )
        if checkpoint_at is not None:
            yield GaugeMetricFamily(
                "jitaccess_audit_last_checkpoint_age_seconds",
                "Seconds since the newest signed checkpoint of the audit chain.",
                value=max((now - checkpoint_at).total_seconds(), 0.0),
            )
        reveals = CounterMetricFamily("jitaccess_reveals", "Secret reveal attempts by outcome.", labels=["outcome"])
        for outcome, n in _reveal_counts(head).items():
            reveals.add_metric([outcome], n)
        yield reveals
        depths = _queue_depths()
        if depths is not None:
            queue = GaugeMetricFamily("jitaccess_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
            for name, depth in depths.items():
                queue.add_metric([name], depth)
            yield queue
        yield from latency.recorder().collect()

    def describe(self) -> Iterable[Metric]:
        # Nothing is read at registration: the database may not be reachable at import.
        return []


REGISTRY = CollectorRegistry(auto_describe=False)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
REGISTRY.register(JitCollector())


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.JIT_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off.")
    if not _bearer_matches(request, token):
        response = HttpResponse("A valid metrics token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
