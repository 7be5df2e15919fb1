"""Latency histograms: observed per process, summed in Redis, read by any scrape."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings as django_settings

from jitaccess import latency
from tests.conftest import as_user
from tests.test_metrics import TOKEN, scrape, value

pytestmark = pytest.mark.django_db

HTTP = latency.HTTP
REVEAL = latency.REVEAL


@pytest.fixture(autouse=True)
def _clean(settings: Any) -> Any:
    settings.JIT_METRICS_TOKEN = TOKEN
    recorder = latency.recorder()
    recorder.flush()
    recorder.totals.clear()
    yield
    recorder.flush()
    recorder.totals.clear()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_shared_totals_are_in_redis_in_tests() -> None:
    # The figures below would prove nothing about several processes if they stayed in memory.
    assert isinstance(latency.recorder().totals, latency.RedisTotals)


def test_requests_are_timed_by_view_method_and_status(client: Any) -> None:
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page/").status_code == 404
    samples = scrape(client)
    labels = {"view": "healthz", "method": "GET", "status": "2xx"}
    assert value(samples, f"{HTTP}_count", **labels) == 3
    assert value(samples, f"{HTTP}_bucket", le="+Inf", **labels) == 3
    assert 0 < value(samples, f"{HTTP}_sum", **labels) < 3 * 10
    # An unknown path is one label, whatever the path was.
    assert value(samples, f"{HTTP}_count", view="unmatched", method="GET", status="4xx") == 1


def test_reveals_are_timed_by_status(client: Any, api: Any, cast: dict[str, Any]) -> None:
    as_user(api, cast["requester"])
    # Refused (no such secret), audited, and timed like any reveal.
    assert api.post("/api/v1/secrets/987654/reveal/", {"reason": "probe"}, format="json").status_code == 404
    assert api.post("/api/v1/secrets/987654/reveal/", {"reason": "probe"}, format="json").status_code == 404
    assert api.get("/api/v1/secrets/987654/").status_code == 404  # not a reveal
    samples = scrape(client)
    assert value(samples, f"{REVEAL}_count", status="404") == 2
    assert value(samples, f"{HTTP}_count", view="secret-reveal", method="POST", status="4xx") == 2


def test_the_buckets_are_cumulative_and_the_sum_adds_up() -> None:
    clock = FakeClock()
    recorder = latency.Recorder(latency.LocalTotals(), monotonic=clock)
    for seconds in (0.001, 0.02, 0.02, 0.3, 42.0):
        recorder.observe(REVEAL, ("200",), seconds)
    (family, _) = list(recorder.collect())[::-1]
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[(f"{REVEAL}_bucket", "0.005")] == 1
    assert samples[(f"{REVEAL}_bucket", "0.025")] == 3
    assert samples[(f"{REVEAL}_bucket", "0.5")] == 4
    assert samples[(f"{REVEAL}_bucket", "10.0")] == 4
    assert samples[(f"{REVEAL}_bucket", "+Inf")] == 5
    assert samples[(f"{REVEAL}_count", None)] == 5
    assert samples[(f"{REVEAL}_sum", None)] == pytest.approx(42.341)


def test_processes_add_up_in_redis_and_flush_about_once_a_second() -> None:
    """Two recorders stand for two web processes; a third reads what both added."""
    clock = FakeClock()
    url = django_settings.REDIS_URL
    first = latency.Recorder(latency.RedisTotals(url), monotonic=clock)
    second = latency.Recorder(latency.RedisTotals(url), monotonic=clock)
    reader = latency.RedisTotals(url)

    first.observe(HTTP, ("healthz", "GET", "2xx"), 0.01)
    second.observe(HTTP, ("healthz", "GET", "2xx"), 0.2)
    assert reader.read(HTTP) == {}  # held in each process until a second has passed
    clock.now += latency.FLUSH_SECONDS
    first.observe(HTTP, ("healthz", "GET", "2xx"), 0.02)
    second.observe(HTTP, ("healthz", "GET", "2xx"), 3.0)

    counts, total = reader.read(HTTP)[("healthz", "GET", "2xx")]
    assert sum(counts) == 4 and total == pytest.approx(3.23)
    assert counts[latency.BUCKETS.index(0.01)] == 1
    assert counts[latency.BUCKETS.index(0.025)] == 1
    assert counts[latency.BUCKETS.index(0.25)] == 1
    assert counts[latency.BUCKETS.index(5.0)] == 1


def test_a_redis_outage_drops_observations_and_never_a_request(caplog: Any) -> None:
    clock = FakeClock()
    recorder = latency.Recorder(latency.RedisTotals("redis://127.0.0.1:1/0"), monotonic=clock)
    with caplog.at_level(logging.WARNING, logger="jitaccess.latency"):
        for _ in range(3):
            recorder.observe(HTTP, ("healthz", "GET", "2xx"), 0.01)
            clock.now += latency.FLUSH_SECONDS
    warnings = [r for r in caplog.records if "latency observations" in r.getMessage()]
    assert len(warnings) == 1  # once a minute, not once a second
    recorder.totals = latency.RedisTotals(django_settings.REDIS_URL)
    recorder.flush()
    assert latency.RedisTotals(django_settings.REDIS_URL).read(HTTP) == {}  # dropped, not replayed late


def test_a_request_still_answers_when_redis_is_down(client: Any, monkeypatch: Any, caplog: Any) -> None:
    clock = FakeClock()
    unreachable = latency.Recorder(latency.RedisTotals("redis://127.0.0.1:1/0"), monotonic=clock)
    monkeypatch.setattr(latency, "recorder", lambda: unreachable)
    clock.now += latency.FLUSH_SECONDS  # so the request's own observation goes straight to Redis
    with caplog.at_level(logging.WARNING, logger="jitaccess.latency"):
        assert client.get("/healthz").status_code == 200
    assert any("latency observations" in r.getMessage() for r in caplog.records)  # the flush was tried
