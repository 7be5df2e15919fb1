"""Rate limits on deciding and revealing: per caller, counted in the shared cache, a 429 with
Retry-After that says what was limited, refused reveals audited, and rates validated at start-up."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from approvals import services as approval_services
from jitaccess.audit.models import AuditEvent
from jitaccess.env import env_rate
from keys import services as key_services
from tests.conftest import submit
from tests.keys.conftest import make_secret
from tests.test_settings import manage

ROOT = Path(__file__).resolve().parent.parent
RETRY_MESSAGE = re.compile(r"Expected available in \d+ seconds?\.$")


@pytest.fixture(autouse=True)
def empty_counts() -> Any:
    # The counts live in Redis, which outlives a test's database transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def rates(settings: Any) -> Any:
    def set_rates(**scoped: str) -> None:
        framework = dict(settings.REST_FRAMEWORK)
        framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **scoped}
        settings.REST_FRAMEWORK = framework

    return set_rates


def as_user(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def reveal(client: APIClient, secret_id: int) -> Any:
    return client.post(f"/api/v1/secrets/{secret_id}/reveal/", {"reason": "restore mailbox"}, format="json")


@pytest.fixture
def secret(cast: dict[str, Any], entitlement: Any) -> Any:
    keyring = key_services.keyring_create(name="ring-t", security_group=entitlement.security_group, acting_user=None)
    return make_secret(keyring, cast["secadmin"])


def test_the_counts_are_kept_in_redis_so_all_web_hosts_share_them(settings):
    assert settings.CACHES["default"]["BACKEND"] == "jitaccess.cache.RedisCache"
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert isinstance(caches["default"], DjangoRedisCache)


def test_the_redis_cache_keeps_one_client_for_every_call():
    # Django's backend builds a new client per call; ours reuses it, and still reads what it wrote.
    first, second = cache._cache.get_client(), cache._cache.get_client(write=True)
    assert first is second
    cache.set("jitaccess-cache-test", {"n": 1}, 30)
    assert cache.get("jitaccess-cache-test") == {"n": 1}
    assert cache._cache.get_client() is first
    cache.delete("jitaccess-cache-test")
    assert cache.get("jitaccess-cache-test") is None


def test_without_redis_the_counts_are_shared_by_the_processes_of_one_host(tmp_path):
    command = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    shown = manage("shell", "-c", command, DJANGO_DEBUG="true", JIT_VAR_DIR=str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "django.core.cache.backends.filebased.FileBasedCache"


# --- approve and deny ----------------------------------------------------------------------------


def test_deciding_is_limited_per_person_with_a_429_that_says_when_to_retry(cast, entitlement, rates):
    rates(decide="2/min")
    requests = [submit(cast["requester"], entitlement) for _ in range(4)]
    legal = as_user(cast["legal1a"])

    assert legal.post(f"/api/v1/requests/{requests[0].pk}/approve/", {}, format="json").status_code == 200
    assert (
        legal.post(f"/api/v1/requests/{requests[1].pk}/deny/", {"comment": "no ticket"}, format="json").status_code
        == 200
    )
    refused = legal.post(f"/api/v1/requests/{requests[2].pk}/approve/", {}, format="json")

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    body = refused.json()
    assert body["code"] == "throttled"
    assert body["detail"].startswith("Too many approvals and denials: the limit is 2 per minute. ")
    assert RETRY_MESSAGE.search(body["detail"])
    requests[2].refresh_from_db()
    assert requests[2].decisions.count() == 0
    # Reading is not limited, and another approver has counts of their own.
    assert legal.get("/api/v1/requests/").status_code == 200
    assert as_user(cast["legal1b"]).post(f"/api/v1/requests/{requests[3].pk}/approve/").status_code == 200


# --- reveal --------------------------------------------------------------------------------------


def test_revealing_is_limited_and_the_refused_attempt_is_audited(cast, secret, rates):
    rates(reveal="2/min")
    svc = as_user(cast["svc"])
    assert [reveal(svc, secret.pk).status_code for _ in range(2)] == [200, 200]

    refused = reveal(svc, secret.pk)

    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["detail"].startswith("Too many reveals: the limit is 2 per minute. ")
    assert "s3cret-value" not in refused.content.decode()
    [event] = AuditEvent.objects.filter(action="secret.reveal_denied")
    assert (event.actor, event.outcome, event.target_type) == (cast["svc"], "denied", "secret")
    assert event.target_id == str(secret.pk)
    assert event.data == {"reason": "restore mailbox", "refusal": "throttled"}
    assert AuditEvent.objects.filter(action="secret.revealed").count() == 2
    # Other people's reveals are counted apart.
    assert reveal(as_user(cast["secadmin"]), secret.pk).status_code == 403  # no access, but not throttled


def test_a_throttled_reveal_with_a_malformed_body_is_still_refused_and_audited(cast, secret, rates):
    rates(reveal="1/min")
    svc = as_user(cast["svc"])
    assert reveal(svc, secret.pk).status_code == 200

    refused = svc.post(f"/api/v1/secrets/{secret.pk}/reveal/", "{not json", content_type="application/json")

    assert refused.status_code == 429
    event = AuditEvent.objects.get(action="secret.reveal_denied")
    assert event.data == {"reason": "", "refusal": "throttled"}


def test_a_grant_credential_counts_against_its_grantee(cast, granted, secret, rates):
    rates(reveal="1/min")
    grant = granted.grant
    credential, _ = approval_services.grant_credential_mint(grant, acting_user=cast["requester"])
    assert reveal(as_user(cast["requester"]), secret.pk).status_code == 200

    with_credential = APIClient()
    with_credential.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    refused = reveal(with_credential, secret.pk)

    assert refused.status_code == 429
    event = AuditEvent.objects.get(action="secret.reveal_denied")
    assert event.grant_id == grant.pk and event.data["credential_grant"] == grant.pk
    assert event.data["refusal"] == "throttled"


def test_other_secret_actions_are_not_limited_by_the_reveal_rate(cast, secret, rates):
    rates(reveal="1/min")
    svc = as_user(cast["svc"])
    assert reveal(svc, secret.pk).status_code == 200
    assert [svc.get("/api/v1/secrets/").status_code for _ in range(3)] == [200, 200, 200]


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("30/min", "30/minute"), ("5/s", "5/second"), (" 100/hour ", "100/hour"), ("1/d", "1/day"), ("7/M", "7/minute")],
)
def test_rates_are_read_strictly(monkeypatch, raw, expected):
    monkeypatch.setenv("X_RATE", raw)
    assert env_rate("X_RATE", "1/min") == expected


@pytest.mark.parametrize("raw", ["lots", "10", "0/min", "-1/min", "10/mango", "10/", "/min", "1.5/min", "١٠/min"])
def test_a_malformed_rate_is_refused(monkeypatch, raw):
    monkeypatch.setenv("X_RATE", raw)
    with pytest.raises(ImproperlyConfigured, match="^X_RATE must be a rate such as 30/min"):
        env_rate("X_RATE", "1/min")


def test_a_bad_rate_stops_start_up_with_one_line_naming_the_variable(tmp_path):
    result = manage("check", DJANGO_DEBUG="true", JIT_VAR_DIR=str(tmp_path), JIT_REVEAL_THROTTLE="lots")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "configuration error: JIT_REVEAL_THROTTLE must be a rate such as 30/min (count/s, min, hour or day), not 'lots'"
    ]


def test_the_reveal_benchmark_raises_the_limits_for_the_server_it_starts(tmp_path, monkeypatch):
    # The benches start gunicorn with the environment bench/app_server.py sets up.
    assert "server_environment(" in (ROOT / "bench/keys.py").read_text()
    spec = importlib.util.spec_from_file_location("bench_app_server", ROOT / "bench/app_server.py")
    app_server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_server)
    for name in ("JIT_REVEAL_THROTTLE", "JIT_DECIDE_THROTTLE", "DJANGO_SETTINGS_MODULE", "JIT_VAR_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # nothing leaks into this test process

    app_server.server_environment(tmp_path, root_key="r", signing_key="s", sink=tmp_path / "sink")

    for name in ("JIT_REVEAL_THROTTLE", "JIT_DECIDE_THROTTLE"):
        assert re.fullmatch(r"\d{6,}/min", os.environ[name]), name
