"""GET /metrics: off without a token, refused with a wrong one, and right numbers for the scraper."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from approvals import services
from approvals.expiry import grant_expire
from approvals.models import AccessRequest, Grant
from jitaccess import clock, metrics
from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.models import AuditEvent
from keys.reveal import secret_reveal_throttled

TOKEN = "metrics-test-token-0123456789abcdef"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.JIT_METRICS_TOKEN = TOKEN
    # The reveal counts persist in the shared cache; each test's chain starts afresh.
    cache.delete(metrics.REVEALS_CACHE_KEY)


def scrape(client: Any) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples by name, then by their sorted labels."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_off_without_a_token(client: Any, settings: Any) -> None:
    settings.JIT_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
def test_a_missing_or_wrong_token_is_refused(client: Any, header: str | None) -> None:
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"jitaccess_" not in response.content


def test_only_get(client: Any) -> None:
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_grants_requests_and_chain(client: Any, cast: dict[str, Any], granted: AccessRequest, entitlement: Any) -> None:
    from tests.conftest import approve_through, submit

    second = approve_through(submit(cast["admin2"], entitlement), cast["legal1a"], cast["legal2"])
    services.grant_revoke(second.grant, acting_user=cast["secadmin"], reason="Work finished early")
    submit(cast["requester"], entitlement, ticket="INC-1002")  # stays pending

    samples = scrape(client)
    assert value(samples, "jitaccess_grants_issued_total") == 2
    assert value(samples, "jitaccess_grants_revoked_total") == 1
    assert value(samples, "jitaccess_grants_expired_total") == 0
    assert value(samples, "jitaccess_grants_active") == 1
    assert value(samples, "jitaccess_requests_pending") == 1
    newest = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert value(samples, "jitaccess_audit_chain_length") == newest
    # The process metrics of the web process come along.
    assert "process_cpu_seconds_total" in samples
    assert "python_info" in samples


def test_expiry_lag_of_grants_expired_in_the_last_hour(client: Any, granted: AccessRequest) -> None:
    grant = granted.grant
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=1), expires_at=now - timedelta(seconds=7))
    assert grant_expire(grant.pk) is None

    samples = scrape(client)
    assert value(samples, "jitaccess_grants_expired_total") == 1
    assert value(samples, "jitaccess_grants_active") == 0
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_count") == 1
    assert 7 <= value(samples, "jitaccess_grant_expiry_lag_seconds_sum") < 60
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_bucket", le="5.0") == 0
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_bucket", le="60.0") == 1
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_bucket", le="+Inf") == 1


def test_expiry_lag_leaves_out_older_expiries(client: Any, granted: AccessRequest) -> None:
    grant = granted.grant
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now - timedelta(hours=3), expires_at=now - timedelta(hours=2))
    grant_expire(grant.pk)
    samples = scrape(client)
    assert value(samples, "jitaccess_grants_expired_total") == 1
    # The expiry happened now, so it is in the window, with the two hours it waited.
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_bucket", le="3600.0") == 0
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_count") == 1

    later = clock.now() + timedelta(hours=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock, "now", lambda: later)
        samples = scrape(client)
    assert value(samples, "jitaccess_grant_expiry_lag_seconds_count") == 0
    assert value(samples, "jitaccess_grants_expired_total") == 1


def test_checkpoint_age(client: Any, granted: AccessRequest) -> None:
    assert "jitaccess_audit_last_checkpoint_age_seconds" not in scrape(client)
    assert checkpoint_write() is not None
    age = value(scrape(client), "jitaccess_audit_last_checkpoint_age_seconds")
    assert 0 <= age < 60


def test_reveals_are_counted_on_from_the_remembered_position(client: Any, cast: dict[str, Any]) -> None:
    secret_reveal_throttled(1, acting_user=cast["requester"], reason="Checking the mailbox")
    samples = scrape(client)
    assert value(samples, "jitaccess_reveals_total", outcome="denied") == 1
    assert value(samples, "jitaccess_reveals_total", outcome="success") == 0
    assert value(samples, "jitaccess_reveals_total", outcome="failed") == 0
    remembered = cache.get(metrics.REVEALS_CACHE_KEY)
    assert remembered["seq"] == AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()

    secret_reveal_throttled(2, acting_user=cast["requester"], reason="Checking again")
    secret_reveal_throttled(3, acting_user=cast["outsider"], reason="Probing")
    assert value(scrape(client), "jitaccess_reveals_total", outcome="denied") == 3
    # Counted from the remembered position, not again from the start.
    cache.set(metrics.REVEALS_CACHE_KEY, {**cache.get(metrics.REVEALS_CACHE_KEY), "counts": {"denied": 50}})
    secret_reveal_throttled(4, acting_user=cast["requester"], reason="Once more")
    assert value(scrape(client), "jitaccess_reveals_total", outcome="denied") == 51


def test_reveal_counts_start_over_when_the_chain_is_not_the_remembered_one(client: Any, cast: dict[str, Any]) -> None:
    secret_reveal_throttled(1, acting_user=cast["requester"], reason="Checking the mailbox")
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    # A restore: the remembered position names a hash this chain does not have.
    cache.set(metrics.REVEALS_CACHE_KEY, {"seq": head, "hash": "0" * 64, "counts": {"denied": 99}})
    assert value(scrape(client), "jitaccess_reveals_total", outcome="denied") == 1
    # Or a position beyond the head.
    cache.set(metrics.REVEALS_CACHE_KEY, {"seq": head + 100, "hash": "0" * 64, "counts": {"denied": 99}})
    assert value(scrape(client), "jitaccess_reveals_total", outcome="denied") == 1


def test_queue_depth_reflects_waiting_messages(client: Any) -> None:
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    before = scrape(client)
    mail_before = value(before, "jitaccess_queue_depth", queue="mail")
    assert ("queue", "celery") in {label for labels in before["jitaccess_queue_depth"] for label in labels}
    # The way kombu's Redis transport stores a message: JSON pushed onto the queue's list, and
    # onto "<queue>\x06\x16<step>" for a higher priority.
    message = json.dumps({"body": "", "headers": {"task": "metrics-test"}, "properties": {}})
    broker.lpush("mail", message)
    broker.lpush("mail\x06\x163", message)
    try:
        assert value(scrape(client), "jitaccess_queue_depth", queue="mail") == mail_before + 2
    finally:
        broker.lrem("mail", 1, message)
        broker.lrem("mail\x06\x163", 1, message)


def test_queue_depth_left_out_without_redis(client: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "filesystem://"
    samples = scrape(client)
    assert "jitaccess_queue_depth" not in samples
    assert "jitaccess_grants_active" in samples


def test_a_scrape_is_not_recorded_as_grant_activity(client: Any, granted: AccessRequest) -> None:
    # The scraper signs in with no account: there is no grantee whose activity it would be.
    before = AuditEvent.objects.filter(action="grant.http_request").count()
    scrape(client)
    assert AuditEvent.objects.filter(action="grant.http_request").count() == before
