"""The auditors' read API: filters, cursor pagination, timelines, verification, configuration
changes, and who may call any of it (invariant 14: auditors read everything, change nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from approvals import services
from approvals.models import AccessRequest, Decision, Grant, GrantCredential
from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.context import audit_context
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.reports import REPORTS
from jitaccess.audit.services import audit_record
from tests.audit.conftest import CONTRACT_FIELDS, GRANTED_AND_REVOKED, T0, errors_of, iso
from tests.conftest import approve_through, as_user, submit

API = "/api/v1"

# --- a trail with known fields ------------------------------------------------------------------

# action, actor, target_type, target_id, grant, outcome; event i is written at T0 + (i + 1) h.
SPECS = [
    ("request.submitted", "requester", "access_request", "1", None, "success"),
    ("decision.approved", "legal1a", "access_request", "1", None, "success"),
    ("decision.refused.self_approval", "requester", "access_request", "1", None, "denied"),
    ("grant.issued", None, "grant", "7", 7, "success"),
    ("credential.minted", "requester", "grant_credential", "3", 7, "success"),
    ("secret.revealed", "requester", "secret", "5", 7, "success"),
    ("secret.reveal_denied", "admin2", "secret", "5", None, "denied"),
    ("secret.reveal_failed", "svc", "secret", "6", None, "failed"),
    ("grant.revoked", "secadmin", "grant", "7", 7, "success"),
    ("auth.login_failed", None, "user", "admin2", None, "failed"),
]
SHARED_CORRELATION = "corr-shared-0001"  # events 4 and 5 (credential.minted, secret.revealed)


@dataclass
class Trail:
    seqs: list[int]  # the seq of SPECS[i]
    background: list[int]  # events the fixtures wrote before (users and groups being set up)

    def pick(self, *indexes: int) -> list[int]:
        """The seqs of those SPECS, newest first as the list returns them."""
        return sorted((self.seqs[i] for i in indexes), reverse=True)


@pytest.fixture
def trail(cast: dict[str, Any], frozen_clock: Any) -> Trail:
    background = list(AuditEvent.objects.values_list("seq", flat=True))
    seqs = []
    for i, (action, actor, target_type, target_id, grant, outcome) in enumerate(SPECS):
        frozen_clock.set(T0 + timedelta(hours=i + 1))
        correlation = SHARED_CORRELATION if i in (4, 5) else f"corr-own-{i:04d}"
        with audit_context(correlation_id=correlation, ip="192.0.2.10"):
            event = audit_record(
                action,
                actor=cast[actor] if actor else None,
                target_type=target_type,
                target_id=target_id,
                grant_id=grant,
                outcome=outcome,
                data={"i": i},
            )
        seqs.append(event.seq)
    return Trail(seqs, background)


def listed(client: APIClient, query: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/audit/events/?{query}&page_size=200")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def seqs_of(client: APIClient, query: str) -> list[int]:
    return [row["seq"] for row in listed(client, query)]


@pytest.mark.parametrize(
    "query, indexes",
    [
        ("actor=requester", [0, 2, 4, 5]),
        ("actor=legal1a", [1]),
        ("actor=nobody", []),
        ("action=secret.revealed", [5]),
        ("action=secret.*", [5, 6, 7]),
        ("action=decision.*", [1, 2]),
        ("action=grant.expired", []),
        ("target_type=secret", [5, 6, 7]),
        ("target_type=secret&target_id=5", [5, 6]),
        ("target_type=grant&target_id=7", [3, 8]),
        ("target_id=admin2", [9]),
        ("target_type=keyring", []),
        ("grant=7", [3, 4, 5, 8]),
        ("grant=8", []),
        ("outcome=denied", [2, 6]),
        ("outcome=failed", [7, 9]),
        ("outcome=success&actor=requester", [0, 4, 5]),
        (f"correlation_id={SHARED_CORRELATION}", [4, 5]),
        ("correlation_id=corr-unknown-0001", []),
        ("actor=requester&outcome=denied", [2]),
    ],
)
def test_each_filter_keeps_exactly_the_matching_events(auditor_api, trail, query, indexes):
    assert seqs_of(auditor_api, query) == trail.pick(*indexes)


def test_time_and_sequence_filters_bound_the_range(auditor_api, trail):
    at = [iso(T0 + timedelta(hours=i + 1)) for i in range(len(SPECS))]
    # since is inclusive, until exclusive.
    assert seqs_of(auditor_api, f"since={at[7]}") == trail.pick(7, 8, 9)
    assert seqs_of(auditor_api, f"since={at[2]}&until={at[4]}") == trail.pick(2, 3)
    assert seqs_of(auditor_api, f"until={at[1]}") == sorted([*trail.background, trail.seqs[0]], reverse=True)
    assert seqs_of(auditor_api, f"since={iso(T0 + timedelta(days=1))}") == []
    # An offset is understood: 11:00+01:00 is 10:00Z, the time of the first event, not the second.
    assert seqs_of(auditor_api, "since=2030-03-04T11:00:00%2B01:00&until=2030-03-04T12:00:00%2B01:00") == [
        trail.seqs[0]
    ]

    low, high = trail.seqs[3], trail.seqs[5]
    assert seqs_of(auditor_api, f"seq_min={low}&seq_max={high}") == trail.pick(3, 4, 5)
    assert seqs_of(auditor_api, f"seq_min={trail.seqs[-1] + 1}") == []
    assert seqs_of(auditor_api, f"seq_max={trail.seqs[0]}") == sorted([*trail.background, trail.seqs[0]], reverse=True)


def test_results_carry_the_contract_fields(auditor_api, trail):
    event = AuditEvent.objects.get(seq=trail.seqs[5])

    (row,) = listed(auditor_api, "action=secret.revealed")

    assert row == {
        "seq": event.seq,
        "at": iso(T0 + timedelta(hours=6)),
        "actor": "requester",
        "action": "secret.revealed",
        "target_type": "secret",
        "target_id": "5",
        "grant": 7,
        "outcome": "success",
        "ip": "192.0.2.10",
        "correlation_id": SHARED_CORRELATION,
        "data": {"i": 5},
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
    (system,) = listed(auditor_api, "action=grant.issued")
    assert system["actor"] is None


@pytest.mark.parametrize(
    "query, field",
    [
        ("action=grant.exploded", "action"),
        ("action=nothing.*", "action"),
        ("action=*", "action"),
        ("grant=abc", "grant"),
        ("grant=0", "grant"),
        ("grant=99999999999999999999", "grant"),
        ("outcome=maybe", "outcome"),
        ("since=yesterday", "since"),
        ("since=2030-13-01T00:00:00Z", "since"),
        ("since=0001-01-01T00:00:00%2B05:00", "since"),
        ("until=not-a-time", "until"),
        ("since=2030-03-05T00:00:00Z&until=2030-03-04T00:00:00Z", "until"),
        ("seq_min=0", "seq_min"),
        ("seq_min=-3", "seq_min"),
        ("seq_max=1.5", "seq_max"),
        ("seq_min=9&seq_max=3", "seq_max"),
        ("actor=" + "a" * 151, "actor"),
        ("actor=bad%00name", "actor"),
        ("target_type=" + "t" * 65, "target_type"),
        ("target_id=" + "7" * 65, "target_id"),
        ("correlation_id=" + "c" * 65, "correlation_id"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
def test_a_malformed_filter_is_a_400_naming_it(auditor_api, trail, query, field):
    response = auditor_api.get(f"{API}/audit/events/?{query}")

    assert field in errors_of(response)


# --- cursor pagination --------------------------------------------------------------------------


@pytest.fixture
def many_events(db: Any) -> list[int]:
    return [audit_record("grant.http_request", target_type="http", target_id=i, data={"i": i}).seq for i in range(57)]


def walk(client: APIClient, url: str) -> tuple[list[int], int]:
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [row["seq"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    return seen, pages


def test_walking_the_cursor_returns_every_event_once_newest_first(auditor_api, many_events):
    seen, pages = walk(auditor_api, f"{API}/audit/events/?page_size=10&action=grant.http_request")

    assert seen == sorted(many_events, reverse=True)
    assert pages == 6


def test_the_cursor_is_stable_while_events_are_appended(auditor_api, many_events):
    first = auditor_api.get(f"{API}/audit/events/?page_size=20&action=grant.http_request").json()
    newer = [audit_record("grant.http_request", target_type="http", target_id="late").seq for _ in range(5)]

    rest, _ = walk(auditor_api, first["next"])

    assert [row["seq"] for row in first["results"]] + rest == sorted(many_events, reverse=True)
    assert not set(newer) & set(rest)


def test_pages_are_read_without_offset_or_count(auditor_api, many_events):
    with CaptureQueriesContext(connection) as first_page:
        body = auditor_api.get(f"{API}/audit/events/?page_size=10&outcome=success").json()
    with CaptureQueriesContext(connection) as next_page:
        assert auditor_api.get(body["next"]).status_code == 200

    statements = [query["sql"].upper() for query in [*first_page.captured_queries, *next_page.captured_queries]]
    event_reads = [sql for sql in statements if "AUDIT_AUDITEVENT" in sql]
    assert len(event_reads) == 2
    assert not [sql for sql in statements if "OFFSET" in sql or "COUNT(" in sql]
    assert all("LIMIT 11" in sql and "ORDER BY" in sql for sql in event_reads)


# --- timelines ----------------------------------------------------------------------------------


@pytest.fixture
def revoked(cast: dict[str, Any], entitlement: Any) -> AccessRequest:
    """A request approved at both stages, its credential minted and the grant revoked."""
    request = approve_through(submit(cast["requester"], entitlement), cast["legal1a"], cast["legal2"])
    services.grant_credential_mint(request.grant, acting_user=cast["requester"])
    services.grant_revoke(request.grant, acting_user=cast["secadmin"], reason="work done")
    return request


def timeline(client: APIClient, url: str) -> list[tuple[str, int]]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response.json()["next"] is None
    return [(row["action"], row["seq"]) for row in response.json()["results"]]


def test_a_request_timeline_holds_the_request_and_its_grant_oldest_first(cast, entitlement, revoked, auditor_api):
    other = submit(cast["admin2"], entitlement)

    events = timeline(auditor_api, f"{API}/audit/requests/{revoked.pk}/timeline/")

    assert [action for action, _ in events] == GRANTED_AND_REVOKED
    assert [seq for _, seq in events] == sorted(seq for _, seq in events)
    assert [action for action, _ in timeline(auditor_api, f"{API}/audit/requests/{other.pk}/timeline/")] == [
        "request.submitted"
    ]


def test_a_grant_timeline_holds_only_the_grant(revoked, auditor_api):
    events = timeline(auditor_api, f"{API}/audit/grants/{revoked.grant.pk}/timeline/")

    assert [action for action, _ in events] == ["grant.issued", "credential.minted", "grant.revoked"]


def test_a_long_timeline_pages_in_order(revoked, auditor_api):
    for i in range(12):
        audit_record("grant.http_request", grant_id=revoked.grant.pk, target_type="http", target_id=i)

    seen, pages = walk(auditor_api, f"{API}/audit/grants/{revoked.grant.pk}/timeline/?page_size=5")

    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 15
    assert pages == 3


@pytest.mark.parametrize("kind", ["requests", "grants"])
@pytest.mark.parametrize("pk", ["999999", "99999999999999999999"])
def test_an_unknown_timeline_is_a_404(auditor_api, revoked, kind, pk):
    response = auditor_api.get(f"{API}/audit/{kind}/{pk}/timeline/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- verification -------------------------------------------------------------------------------


def test_verify_reports_an_intact_chain_and_its_checkpoint(auditor_api, trail):
    checkpoint_write()

    body = auditor_api.get(f"{API}/audit/verify/").json()

    assert body["ok"] is True
    assert body["checked"] == AuditEvent.objects.count()
    assert body["first_invalid_seq"] is None
    assert body["last_checkpoint"]["seq"] == trail.seqs[-1]


@pytest.mark.postgres
def test_verify_names_the_first_tampered_event(auditor_api, trail):
    with connection.cursor() as cursor:
        # As a database owner could: with the append-only trigger off.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET data = '{\"i\": 99}' WHERE seq = %s", [trail.seqs[3]])
        cursor.execute("SET LOCAL session_replication_role = origin")

    body = auditor_api.get(f"{API}/audit/verify/").json()

    assert (body["ok"], body["first_invalid_seq"]) == (False, trail.seqs[3])


# --- configuration changes ----------------------------------------------------------------------


def changes(client: APIClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{API}/audit/changes/", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_configuration_changes_list_auditlog_entries_with_filters(cast, entitlement, auditor_api):
    entitlement.refresh_from_db()
    with set_actor(cast["secadmin"]):
        entitlement.max_duration_seconds = 4 * 3600
        entitlement.save()
    entry = LogEntry.objects.latest("id")
    just_after = iso(entry.timestamp + timedelta(seconds=1))

    assert changes(auditor_api, model="approvals.entitlement", actor="secadmin") == [
        {
            "id": entry.pk,
            "timestamp": iso(entry.timestamp),
            "actor": "secadmin",
            "action": "update",
            "model": "approvals.entitlement",
            "object_pk": str(entitlement.pk),
            "object_repr": "dkm-test",
            "changes": {"max_duration_seconds": ["28800", "14400"]},
            "remote_addr": None,
        }
    ]
    of_object = changes(auditor_api, model="approvals.entitlement", object_pk=entitlement.pk)
    assert [row["action"] for row in of_object] == ["update", "create"]
    assert changes(auditor_api, actor="legal1a") == []
    assert changes(auditor_api, since=just_after) == []
    ids = [row["id"] for row in changes(auditor_api, until=just_after, page_size=200)]
    assert ids == sorted(ids, reverse=True) and ids[0] == entry.pk


@pytest.mark.parametrize(
    "query, field",
    [
        ("model=approvals", "model"),
        ("model=nothing.here", "model"),
        ("since=soon", "since"),
        ("until=2030-01-01&since=2030-02-01", "until"),
        ("actor=" + "x" * 151, "actor"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
def test_a_malformed_change_filter_is_a_400_naming_it(auditor_api, cast, query, field):
    assert field in errors_of(auditor_api.get(f"{API}/audit/changes/?{query}"))


def test_change_pages_are_read_without_offset_or_count(auditor_api, cast):
    with CaptureQueriesContext(connection) as queries:
        body = auditor_api.get(f"{API}/audit/changes/?page_size=3").json()
        assert auditor_api.get(body["next"]).status_code == 200

    assert not [q for q in queries.captured_queries if "OFFSET" in q["sql"].upper() or "COUNT(" in q["sql"].upper()]


# --- who may call it ----------------------------------------------------------------------------

READS = [
    "/api/v1/audit/events/",
    "/api/v1/audit/export/?format=jsonl",
    "/api/v1/audit/export/?format=csv",
    "/api/v1/audit/verify/",
    "/api/v1/audit/changes/",
    "/api/v1/audit/reports/",
    *[f"/api/v1/audit/reports/{name}/" for name in sorted(REPORTS)],
    "/api/v1/audit/reports/refused-attempts/?format=csv",
    "/api/v1/audit/requests/{request}/timeline/",
    "/api/v1/audit/grants/{grant}/timeline/",
    "/api/v1/grants/{grant}/evidence/",
]
NOT_AUDITORS = ["requester", "admin2", "legal1a", "legal2", "secadmin", "svc", "outsider", "grant credential"]


@pytest.fixture
def world(cast: dict[str, Any], revoked: AccessRequest, entitlement: Any) -> dict[str, Any]:
    # The grantee holds a second, active grant, so the grant credential is a live one.
    active = approve_through(submit(cast["requester"], entitlement), cast["legal1b"], cast["legal2b"])
    token, _ = services.grant_credential_mint(active.grant, acting_user=cast["requester"])
    return {"request": revoked.pk, "grant": revoked.grant.pk, "credential": token}


def client_as(cast: dict[str, Any], world: dict[str, Any], role: str) -> APIClient:
    if role == "grant credential":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['credential']}")
        return client
    return as_user(APIClient(), cast[role])


def auditor_reads() -> int:
    return AuditEvent.objects.filter(action__startswith="audit.").count()


@pytest.mark.parametrize("path", READS)
def test_anonymous_callers_get_a_401(world, path):
    response = APIClient().get(path.format(**world))

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert auditor_reads() == 0


@pytest.mark.parametrize("role", NOT_AUDITORS)
@pytest.mark.parametrize("path", READS)
def test_nobody_but_an_auditor_reads_the_trail(cast, world, role, path):
    response = client_as(cast, world, role).get(path.format(**world))

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    assert auditor_reads() == 0


@pytest.mark.parametrize("path", READS)
def test_the_auditor_reads_every_path(cast, world, auditor_api, path):
    response = auditor_api.get(path.format(**world))

    assert response.status_code == 200, getattr(response, "content", b"")


def state() -> tuple[Any, ...]:
    return (
        list(AuditEvent.objects.order_by("seq").values_list("seq", "hash")),
        LogEntry.objects.count(),
        list(AccessRequest.objects.order_by("pk").values_list("pk", "state", "current_stage")),
        list(Grant.objects.order_by("pk").values_list("pk", "state", "end_reason")),
        Decision.objects.count(),
        list(GrantCredential.objects.order_by("pk").values_list("pk", "revoked_at")),
    )


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "head", "options"])
def test_auditors_change_nothing_through_any_method(cast, world, auditor_api, method):
    before = state()

    statuses = {
        path: getattr(auditor_api, method)(
            path.format(**world), {"seq": 1, "action": "forged"}, format="json"
        ).status_code
        for path in READS
    }

    assert set(statuses.values()) == {405}, statuses
    assert state() == before


# --- the contract -------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_auditor_api(auditor_api):
    schema = auditor_api.get(f"{API}/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]

    events = paths["/api/v1/audit/events/"]["get"]
    assert {p["name"] for p in events["parameters"]} >= {
        "actor",
        "action",
        "target_type",
        "target_id",
        "grant",
        "outcome",
        "since",
        "until",
        "seq_min",
        "seq_max",
        "correlation_id",
        "cursor",
    }
    export = paths["/api/v1/audit/export/"]["get"]
    assert set(export["responses"]["200"]["content"]) == {"application/x-ndjson", "text/csv"}
    assert set(next(p for p in export["parameters"] if p["name"] == "format")["schema"]["enum"]) == {"jsonl", "csv"}
    for path in [
        "/api/v1/audit/verify/",
        "/api/v1/audit/changes/",
        "/api/v1/audit/reports/",
        "/api/v1/audit/reports/{name}/",
        "/api/v1/audit/requests/{id}/timeline/",
        "/api/v1/audit/grants/{id}/timeline/",
        "/api/v1/grants/{id}/evidence/",
    ]:
        assert set(paths[path]) == {"get"}, path
    event_fields = schema["components"]["schemas"]["AuditEvent"]["properties"]
    assert set(CONTRACT_FIELDS) <= set(event_fields)
