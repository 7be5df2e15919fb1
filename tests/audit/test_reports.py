"""Auditor reports, checked against a scenario whose every number is known in advance."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.http import StreamingHttpResponse

from approvals import services
from approvals.models import ApprovalStage
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.services import audit_record
from jitaccess.errors import NotAllowed
from tests.audit.conftest import T0, errors_of, iso
from tests.conftest import make_entitlement, submit

API = "/api/v1"
LATER = T0 + timedelta(days=8)  # Tuesday of the following week


@pytest.fixture
def scenario(cast: dict[str, Any], entitlement: Any, security_group: Any, frozen_clock: Any) -> dict[str, Any]:
    """dkm-test: three requests (two granted then revoked early, one denied at stage 2) and two
    refused self-approvals. dkm-other (stage 1 needs two approvals): one grant, a week later.
    Then reveals of two secrets."""
    other = make_entitlement(security_group, "dkm-other", "DKM other")
    ApprovalStage.objects.filter(entitlement=other, order=1).update(required_approvals=2)
    at = frozen_clock.set
    decide = services.request_decide

    def minutes(n: float) -> None:
        at(T0 + timedelta(minutes=n))

    def grant_and_revoke(
        requester: str, approvers: tuple[str, str], revoker: str, reason: str, *, duration: int, at: tuple[int, ...]
    ) -> Any:
        """Submit, approve at both stages, then revoke, at the ``at`` minutes after T0."""
        submitted, first, second, revoked = at
        minutes(submitted)
        request = submit(cast[requester], entitlement, duration_seconds=duration)
        for approver, when in zip(approvers, (first, second), strict=True):
            minutes(when)
            decide(request, approver=cast[approver], decision="approve")
        request.refresh_from_db()
        minutes(revoked)
        services.grant_revoke(request.grant, acting_user=cast[revoker], reason=reason)
        return request

    r1 = grant_and_revoke(
        "requester", ("legal1a", "legal2"), "secadmin", "ticket closed", duration=6000, at=(0, 10, 40, 50)
    )
    r2 = grant_and_revoke("admin2", ("legal1b", "legal2b"), "admin2", "done early", duration=3600, at=(60, 80, 90, 105))

    minutes(180)
    r3 = submit(cast["requester"], entitlement)
    for n in (185, 186):
        minutes(n)
        with pytest.raises(NotAllowed):
            decide(r3, approver=cast["requester"], decision="approve")
    minutes(240)
    decide(r3, approver=cast["legal1a"], decision="approve")
    minutes(360)
    decide(r3, approver=cast["legal2"], decision="deny", comment="not justified")

    at(LATER)
    r4 = submit(cast["admin2"], other)
    at(LATER + timedelta(minutes=5))
    decide(r4, approver=cast["legal1a"], decision="approve")
    at(LATER + timedelta(minutes=8))
    decide(r4, approver=cast["legal1b"], decision="approve")  # completes stage 1
    at(LATER + timedelta(minutes=10))
    decide(r4, approver=cast["legal2"], decision="approve")
    at(LATER + timedelta(minutes=20))
    r5 = submit(cast["requester"], entitlement)
    at(LATER + timedelta(minutes=30))
    services.request_withdraw(r5, acting_user=cast["requester"])  # not a decision

    at(LATER + timedelta(days=1))
    reveals = [
        ("secret.revealed", "svc", "5", "success"),
        ("secret.revealed", "svc", "5", "success"),
        ("secret.revealed", "requester", "5", "success"),
        ("secret.reveal_denied", "admin2", "5", "denied"),
        ("secret.reveal_failed", "svc", "5", "failed"),
        ("secret.reveal_denied", "outsider", "9", "denied"),
        ("secret.reveal_denied", "outsider", "9", "denied"),
    ]
    for action, actor, secret, outcome in reveals:
        audit_record(action, actor=cast[actor], target_type="secret", target_id=secret, outcome=outcome)
    return {"r1": r1, "r2": r2}


def report(client: Any, name: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{API}/audit/reports/{name}/", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == name
    assert all(set(row) == set(body["columns"]) for row in body["rows"])
    return body["rows"]


def stats(entitlement: str, stage: int | None, count: int, median: float, p90: float, top: float) -> dict[str, Any]:
    return {
        "entitlement": entitlement,
        "stage": stage,
        "count": count,
        "median_seconds": median,
        "p90_seconds": p90,
        "max_seconds": top,
    }


def test_decision_times_per_entitlement_and_stage(auditor_api, scenario):
    assert report(auditor_api, "decision-times") == [
        # Stage 1 of dkm-other waits for two approvals: stage 2 opens at the second one (+8 min).
        stats("dkm-other", 1, 2, 390.0, 462.0, 480.0),
        stats("dkm-other", 2, 1, 120.0, 120.0, 120.0),
        stats("dkm-other", None, 1, 600.0, 600.0, 600.0),
        # 600, 1200, 3600 s: the median is the middle one, p90 interpolates 80 % of the way up.
        stats("dkm-test", 1, 3, 1200.0, 3120.0, 3600.0),
        # 1800, 600 and the denial after 7200 s, each from the end of stage 1.
        stats("dkm-test", 2, 3, 1800.0, 6120.0, 7200.0),
        # Submission to final decision: 2400, 1800, 10800 s; the withdrawn request is no decision.
        stats("dkm-test", None, 3, 2400.0, 9120.0, 10800.0),
    ]
    assert report(auditor_api, "decision-times", since=iso(LATER)) == [
        stats("dkm-other", 1, 2, 390.0, 462.0, 480.0),
        stats("dkm-other", 2, 1, 120.0, 120.0, 120.0),
        stats("dkm-other", None, 1, 600.0, 600.0, 600.0),
    ]


@pytest.mark.parametrize(
    "period, expected",
    [
        ("day", [("2030-03-04", "dkm-test", 2, 2), ("2030-03-12", "dkm-other", 1, 1)]),
        ("week", [("2030-03-04", "dkm-test", 2, 2), ("2030-03-11", "dkm-other", 1, 1)]),
        ("month", [("2030-03-01", "dkm-other", 1, 1), ("2030-03-01", "dkm-test", 2, 2)]),
    ],
)
def test_grants_per_entitlement_per_period(auditor_api, scenario, period, expected):
    rows = report(auditor_api, "grants-per-entitlement", period=period)

    assert [(r["period"], r["entitlement"], r["grants"], r["users"]) for r in rows] == expected


def test_grants_per_entitlement_within_a_window(auditor_api, scenario):
    rows = report(auditor_api, "grants-per-entitlement", period="day", until=iso(T0 + timedelta(days=1)))

    assert rows == [{"period": "2030-03-04", "entitlement": "dkm-test", "grants": 2, "users": 2}]


def test_early_revocations_say_who_by_whom_why_and_how_much_was_cut(auditor_api, scenario):
    r1, r2 = scenario["r1"], scenario["r2"]

    assert report(auditor_api, "early-revocations") == [
        {
            "grant": r2.grant.pk,
            "entitlement": "dkm-test",
            "user": "admin2",
            "revoked_by": "admin2",
            "reason": "done early",
            "starts_at": iso(T0 + timedelta(minutes=90)),
            "expires_at": iso(T0 + timedelta(minutes=150)),
            "revoked_at": iso(T0 + timedelta(minutes=105)),
            "seconds_cut_short": 2700.0,
        },
        {
            "grant": r1.grant.pk,
            "entitlement": "dkm-test",
            "user": "requester",
            "revoked_by": "secadmin",
            "reason": "ticket closed",
            "starts_at": iso(T0 + timedelta(minutes=40)),
            "expires_at": iso(T0 + timedelta(minutes=140)),
            "revoked_at": iso(T0 + timedelta(minutes=50)),
            "seconds_cut_short": 5400.0,
        },
    ]
    assert (
        report(auditor_api, "early-revocations", since=iso(T0 + timedelta(minutes=51)))
        == report(auditor_api, "early-revocations")[:1]
    )
    # `until` is an upper bound on the revocation time, beside the "before it was due" one.
    assert (
        report(auditor_api, "early-revocations", until=iso(T0 + timedelta(minutes=51)))
        == report(auditor_api, "early-revocations")[1:]
    )


def test_refused_attempts_grouped_by_action_and_actor(auditor_api, scenario):
    rows = report(auditor_api, "refused-attempts", since=iso(T0))

    assert [(r["action"], r["outcome"], r["actor"], r["attempts"]) for r in rows] == [
        ("decision.refused.self_approval", "denied", "requester", 2),
        ("secret.reveal_denied", "denied", "outsider", 2),
        ("secret.reveal_denied", "denied", "admin2", 1),
        ("secret.reveal_failed", "failed", "svc", 1),
    ]
    assert (rows[0]["first_at"], rows[0]["last_at"]) == (
        iso(T0 + timedelta(minutes=185)),
        iso(T0 + timedelta(minutes=186)),
    )
    assert report(auditor_api, "refused-attempts", since=iso(T0), until=iso(LATER)) == rows[:1]


def test_reveals_per_secret(auditor_api, scenario):
    assert report(auditor_api, "reveals-per-secret") == [
        {"secret": "5", "revealed": 3, "denied": 1, "failed": 1, "actors": 3},
        {"secret": "9", "revealed": 0, "denied": 2, "failed": 0, "actors": 1},
    ]
    assert report(auditor_api, "reveals-per-secret", until=iso(LATER)) == []


def test_the_report_list_names_and_describes_every_report(auditor_api):
    body = auditor_api.get(f"{API}/audit/reports/").json()

    assert [item["name"] for item in body] == [
        "decision-times",
        "early-revocations",
        "grants-per-entitlement",
        "refused-attempts",
        "reveals-per-secret",
    ]
    assert all(item["title"] and item["description"] and item["columns"] for item in body)


def test_a_csv_report_is_the_same_table_and_is_audited(cast, auditor_api, scenario):
    shown = report(auditor_api, "early-revocations")
    assert not AuditEvent.objects.filter(action="audit.report_exported").exists()

    response = auditor_api.get(f"{API}/audit/reports/early-revocations/", {"format": "csv", "period": "week"})

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].startswith('attachment; filename="report-early-revocations-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert rows == [{column: str(value) for column, value in row.items()} for row in shown]
    (record,) = AuditEvent.objects.filter(action="audit.report_exported")
    assert (record.actor, record.target_type, record.target_id) == (cast["auditor"], "report", "early-revocations")
    assert record.data == {"format": "csv", "since": None, "until": None, "period": "week"}


@pytest.mark.parametrize(
    "query, field",
    [
        ("period=year", "period"),
        ("format=xlsx", "format"),
        ("since=last-week", "since"),
        ("since=2030-03-04T00:00:00Z&until=2030-03-01T00:00:00Z", "until"),
    ],
)
def test_a_bad_report_parameter_is_a_400_naming_it(auditor_api, query, field):
    download = "" if "format=" in query else "&format=csv"
    assert field in errors_of(auditor_api.get(f"{API}/audit/reports/decision-times/?{query}{download}"))
    assert not AuditEvent.objects.filter(action="audit.report_exported").exists()


def test_an_unknown_report_is_a_404(auditor_api):
    response = auditor_api.get(f"{API}/audit/reports/who-knows/?format=csv")

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="audit.report_exported").exists()
