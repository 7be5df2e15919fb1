"""Helpers for the auditors' API tests: an auditor's client, a clock the test moves, and the
endpoints every role but the auditor is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from jitaccess import clock
from tests.conftest import as_user

# A Monday after any real "now" of the suite, so events the fixtures write at real time come first.
T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


class MovableClock:
    """Stands in for ``jitaccess.clock.now``: every service, and the audit trail, reads it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    test_clock = MovableClock(T0)
    monkeypatch.setattr(clock, "now", test_clock.now)
    return test_clock


@pytest.fixture
def auditor_api(cast: dict[str, Any]) -> APIClient:
    return as_user(APIClient(), cast["auditor"])


# The fields the API contract promises for every event (API.md, "Audit").
CONTRACT_FIELDS = ("seq", "at", "actor", "action", "target_type", "target_id", "grant", "outcome", "ip", "data", "hash")

# The events of a request approved at both stages whose grant's credential was minted, and which
# was then revoked, in the order they happen.
GRANTED_AND_REVOKED = [
    "request.submitted",
    "decision.approved",
    "request.stage_opened",
    "decision.approved",
    "request.approved",
    "grant.issued",
    "credential.minted",
    "grant.revoked",
]


@pytest.fixture
def audit_unavailable(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``audit_unavailable("pkg.module")`` makes every audit write made from that module fail."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    def break_in(module: str) -> None:
        monkeypatch.setattr(f"{module}.audit_record", refuse)

    return break_in


@pytest.fixture
def auditor_seeing_errors(cast: dict[str, Any]) -> APIClient:
    """An auditor's client that receives a server error as a 500 instead of raising it."""
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(cast["auditor"])
    return client


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def errors_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    return body["errors"]
