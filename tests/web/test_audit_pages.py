"""The auditors' pages over the trail: events with the API's filters and keyset pages, one event,
exports, verification, reports and configuration changes."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.reports import REPORTS
from jitaccess.audit.services import audit_record
from jitaccess.audit.signing import signing_public_key
from tests.audit.conftest import T0, iso
from tests.audit.test_api import SHARED_CORRELATION, SPECS
from tests.web.conftest import by_id, elements, facts_of, link, listed_seqs, recorded, text_of

# --- the event browser --------------------------------------------------------------------------


def test_the_event_browser_lists_the_trail_newest_first(auditor, trail):
    response = auditor.get("/audit/")

    assert response.status_code == 200
    seqs = listed_seqs(response)
    assert seqs == sorted(seqs, reverse=True)
    assert set(trail.seqs) <= set(seqs)
    actions = {text_of(code) for code in elements(response, "code")}
    assert {spec[0] for spec in SPECS} <= actions
    # The grant the events happened under links to its timeline; a request target to its own.
    hrefs = {a.attrs["href"] for a in elements(response, "a")}
    assert {"/audit/grants/7/", "/audit/requests/1/"} <= hrefs
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]


def test_the_event_browser_shows_the_last_checkpoint(auditor, trail):
    assert "No checkpoint has been signed yet." in auditor.get("/audit/").content.decode()

    checkpoint = checkpoint_write()
    response = auditor.get("/audit/")

    facts = [text_of(dd) for dd in elements(response, "dd")]
    assert f"#{checkpoint.seq}" in facts
    assert f"{signing_public_key()[:16]} (current signing key)" in facts


@pytest.mark.parametrize(
    "query, indexes",
    [
        ("actor=requester", [0, 2, 4, 5]),
        ("actor=admin2", [6]),
        ("action=secret.revealed", [5]),
        ("action=secret.*", [5, 6, 7]),
        ("action=decision.refused.*", [2]),
        ("action=decision.*", [1, 2]),
        ("target_type=secret&target_id=5", [5, 6]),
        ("grant=7", [3, 4, 5, 8]),
        ("outcome=denied", [2, 6]),
        ("outcome=failed", [7, 9]),
        (f"correlation_id={SHARED_CORRELATION}", [4, 5]),
        ("actor=requester&outcome=denied", [2]),
        (f"since={iso(T0 + timedelta(hours=3))}&until={iso(T0 + timedelta(hours=5))}", [2, 3]),
        ("actor=nobody", []),
    ],
)
def test_filters_narrow_the_events(auditor, trail, query, indexes):
    response = auditor.get(f"/audit/?{query}")

    assert response.status_code == 200
    assert listed_seqs(response) == trail.pick(*indexes)


def test_sequence_filters_bound_the_range(auditor, trail):
    response = auditor.get(f"/audit/?seq_min={trail.seqs[1]}&seq_max={trail.seqs[3]}")

    assert listed_seqs(response) == trail.pick(1, 2, 3)


def test_the_filter_form_keeps_what_was_asked_and_offers_every_action(auditor, trail):
    response = auditor.get("/audit/?action=secret.*&outcome=denied")

    assert by_id(response, "id_action").attrs["value"] == "secret.*"
    assert by_id(response, "id_action").attrs["list"] == "action-suggestions"
    suggestions = {option.attrs["value"] for option in elements(response, "option") if "value" in option.attrs}
    assert {"secret.*", "decision.*", "decision.refused.*", "grant.revoked", "audit.exported"} <= suggestions
    selected = [o.attrs["value"] for o in elements(response, "option") if "selected" in o.attrs]
    assert selected == ["denied"]


@pytest.mark.parametrize(
    "query, field, message",
    [
        ("action=secret.nope", "action", "Unknown action 'secret.nope'."),
        ("action=nothing.*", "action", "No action starts with 'nothing.'."),
        ("outcome=maybe", "outcome", "Select a valid choice. maybe is not one of the available choices."),
        ("grant=seven", "grant", "Enter a whole number."),
        ("grant=99999999999999999999", "grant", "Ensure this value is less than or equal to 9223372036854775807."),
        ("since=soon", "since", "Enter a valid date/time."),
        ("since=2030-02-01T00:00Z&until=2030-01-01T00:00Z", "until", "Must be later than since."),
        ("seq_min=9&seq_max=3", "seq_max", "Must not be lower than seq_min."),
        ("target_id=" + "7" * 65, "target_id", "Ensure this value has at most 64 characters (it has 65)."),
        ("actor=ad%00min", "actor", "Null characters are not allowed."),
    ],
)
def test_a_bad_filter_is_a_400_with_the_message_beside_its_field(auditor, trail, query, field, message):
    response = auditor.get(f"/audit/?{query}")

    assert response.status_code == 400
    error = by_id(response, f"id_{field}_error")
    assert error.tag == "ul" and text_of(error) == message
    control = by_id(response, f"id_{field}")
    assert control.attrs["aria-invalid"] == "true"
    assert f"id_{field}_error" in control.attrs["aria-describedby"].split()
    # No results and no downloads for a query that was refused.
    assert listed_seqs(response) == [] and link(response, "Export CSV") is None


@pytest.mark.parametrize(
    "query", ["before=abc", "after=-1", "before=5&after=2", "page_size=0", "page_size=201", "before=" + "9" * 30]
)
def test_a_bad_page_link_is_a_400(auditor, trail, query):
    response = auditor.get(f"/audit/?{query}")

    assert response.status_code == 400
    assert "This page link is not valid:" in response.content.decode()


# --- keyset pages -------------------------------------------------------------------------------


@pytest.fixture
def many_events(db: Any) -> list[int]:
    return [audit_record("grant.http_request", target_type="http", target_id=i, data={"i": i}).seq for i in range(57)]


def walk(client: Any, url: str, direction: str) -> tuple[list[int], int, str]:
    """Follow the ``direction`` links from ``url``; returns the seqs seen, the pages and the last url."""
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += listed_seqs(response)
        pages += 1
        last, url = url, link(response, direction)
        url = f"/audit/{url}" if url else None
    return seen, pages, last


def test_older_links_walk_every_event_once_and_newer_links_walk_back(auditor, many_events):
    seen, pages, last = walk(auditor, "/audit/?action=grant.http_request&page_size=10", "Older →")

    assert seen == sorted(many_events, reverse=True)
    assert pages == 6
    # Back from the oldest page, through the newer links: the same pages in reverse.
    first_of_last = listed_seqs(auditor.get(last))
    back, pages_back, _ = walk(auditor, last, "← Newer")
    assert pages_back == 6
    assert back[: len(first_of_last)] == first_of_last
    assert sorted(back) == sorted(many_events)
    assert len(back) == len(set(back))


def test_the_newest_page_has_no_newer_link_and_the_oldest_no_older(auditor, many_events):
    newest = auditor.get("/audit/?action=grant.http_request&page_size=60")

    assert link(newest, "← Newer") is None and link(newest, "Older →") is None
    assert listed_seqs(newest) == sorted(many_events, reverse=True)


def test_a_page_past_either_end_links_back_to_the_events(auditor, many_events):
    below = auditor.get(f"/audit/?action=grant.http_request&page_size=10&before={min(many_events)}")
    above = auditor.get(f"/audit/?action=grant.http_request&page_size=10&after={max(many_events)}")

    assert listed_seqs(below) == [] and link(below, "Older →") is None
    assert listed_seqs(auditor.get("/audit/" + link(below, "← Newer"))) == sorted(many_events)[:10][::-1]
    assert listed_seqs(above) == [] and link(above, "← Newer") is None
    assert listed_seqs(auditor.get("/audit/" + link(above, "Older →"))) == sorted(many_events, reverse=True)[:10]


def test_page_links_keep_the_filters(auditor, many_events):
    response = auditor.get("/audit/?action=grant.http_request&page_size=10&outcome=success")

    older = link(response, "Older →")
    assert "action=grant.http_request" in older and "outcome=success" in older and "page_size=10" in older


def test_pages_are_read_without_offset_or_count(auditor, many_events):
    with CaptureQueriesContext(connection) as queries:
        first = auditor.get("/audit/?page_size=10")
        auditor.get("/audit/" + link(first, "Older →"))

    statements = [query["sql"].upper() for query in queries.captured_queries]
    assert [sql for sql in statements if "AUDIT_AUDITEVENT" in sql]
    assert not [sql for sql in statements if "OFFSET" in sql or "COUNT(" in sql]


# --- one event ----------------------------------------------------------------------------------


def test_an_event_page_shows_every_field(auditor, trail):
    seq = trail.seqs[5]
    event = AuditEvent.objects.get(seq=seq)

    response = auditor.get(f"/audit/events/{seq}/")

    assert response.status_code == 200
    facts = facts_of(response)
    assert facts["Sequence number"] == str(seq)
    assert facts["Time (UTC)"] == "2030-03-04 15:00:00.000000"
    assert facts["Action"] == "secret.revealed"
    assert facts["Actor"] == "requester (their events)"
    assert facts["Target"] == "secret 5"
    assert facts["Grant"] == "grant 7"
    assert facts["Outcome"] == "success"
    assert facts["Client IP"] == "192.0.2.10"
    assert facts["Previous hash"] == event.prev_hash
    assert facts["Hash"] == event.hash
    assert json.loads(text_of(elements(response, "pre")[0])) == {"i": 5}
    assert link(response, "events of the same request or task") == f"/audit/?correlation_id={SHARED_CORRELATION}"
    assert link(response, f"← Event {seq - 1}") == f"/audit/events/{seq - 1}/"


@pytest.mark.parametrize("seq", ["999999", "99999999999999999999"])
def test_an_unknown_event_is_the_404_page(auditor, trail, seq):
    response = auditor.get(f"/audit/events/{seq}/")

    assert response.status_code == 404
    assert text_of(elements(response, "h1")[0]) == "Not found"
    assert link(response, "Audit events") == "/audit/"  # the page keeps its header and nav


# --- exports ------------------------------------------------------------------------------------


def test_the_export_links_stream_the_filtered_events_and_are_audited(auditor, trail):
    page = auditor.get("/audit/?action=secret.*")
    csv_url = link(page, "Export CSV")
    jsonl_url = link(page, "Export JSON lines")

    response = auditor.get(csv_url)

    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(row["seq"]) for row in rows] == sorted(trail.pick(5, 6, 7))
    exported = recorded("audit.exported")
    assert len(exported) == 1
    assert exported[0].actor_name == "auditor"
    assert exported[0].data["filters"] == {"action": "secret.*"} and exported[0].data["format"] == "csv"

    lines = b"".join(auditor.get(jsonl_url).streaming_content).decode().splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "secret.revealed",
        "secret.reveal_denied",
        "secret.reveal_failed",
    ]
    assert len(recorded("audit.exported")) == 2


def test_browsing_records_no_export(auditor, trail):
    auditor.get("/audit/?action=secret.*")
    auditor.get(f"/audit/events/{trail.seqs[0]}/")

    assert recorded("audit.exported") == []


# --- verification -------------------------------------------------------------------------------


def test_the_verification_page_reports_an_intact_trail(auditor, trail):
    checkpoint = checkpoint_write()

    response = auditor.get("/audit/verify/")

    assert response.status_code == 200
    verdict = elements(response, "p", **{"class": "verdict__word"})
    assert [text_of(p) for p in verdict] == ["OK"]
    facts = facts_of(response)
    assert facts["Events checked"] == str(AuditEvent.objects.count())
    assert facts["First invalid event"] == "none"
    assert facts["Covers events up to"] == f"#{checkpoint.seq}"
    assert facts["Public key fingerprint"] == f"{signing_public_key()[:16]} (current signing key)"
    assert facts["Checkpoint sink"].endswith("audit-checkpoints.jsonl")
    assert signing_public_key() not in response.content.decode()  # the fingerprint only


@pytest.mark.postgres
def test_the_verification_page_shows_invalid_after_tampering(auditor, trail):
    checkpoint_write()
    with connection.cursor() as cursor:
        # As a database owner could: with the append-only trigger off.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET data = '{\"i\": 99}' WHERE seq = %s", [trail.seqs[2]])
        cursor.execute("SET LOCAL session_replication_role = origin")

    response = auditor.get("/audit/verify/")

    assert response.status_code == 200
    assert [text_of(p) for p in elements(response, "p", **{"class": "verdict__word"})] == ["INVALID"]
    facts = facts_of(response)
    assert facts["First invalid event"] == f"#{trail.seqs[2]}"
    assert facts["Reason"] == "content does not match its hash"


# --- reports ------------------------------------------------------------------------------------


def test_the_report_list_names_every_report(auditor):
    response = auditor.get("/audit/reports/")

    assert response.status_code == 200
    for report in REPORTS.values():
        assert link(response, report.title) == f"/audit/reports/{report.name}/"


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_renders_its_columns(auditor, granted, name):
    response = auditor.get(f"/audit/reports/{name}/")

    assert response.status_code == 200
    assert [text_of(th) for th in elements(response, "th")] == list(REPORTS[name].columns)


def test_a_report_shows_its_rows_for_the_window(auditor, trail):
    response = auditor.get(f"/audit/reports/refused-attempts/?since={iso(T0)}")

    rows = [[text_of(td) for td in tr_cells] for tr_cells in _rows(response)]
    assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
        ("auth.login_failed", "failed", "–", "1"),
        ("decision.refused.self_approval", "denied", "requester", "1"),
        ("secret.reveal_denied", "denied", "admin2", "1"),
        ("secret.reveal_failed", "failed", "svc", "1"),
    ]


def _rows(response: Any) -> list[list[Any]]:
    # Cells in document order, cut into rows of the table's width.
    width = len(elements(response, "th"))
    cells = elements(response, "td")
    return [cells[i : i + width] for i in range(0, len(cells), width)]


@pytest.mark.parametrize(
    "query, field, message",
    [
        ("since=yesterday", "since", "Enter a valid date/time."),
        ("since=2030-02-01T00:00Z&until=2030-01-01T00:00Z", "until", "Must be later than since."),
        ("period=year", "period", "Select a valid choice. year is not one of the available choices."),
    ],
)
def test_a_bad_report_window_is_a_400_beside_its_field(auditor, query, field, message):
    response = auditor.get(f"/audit/reports/grants-per-entitlement/?{query}")

    assert response.status_code == 400
    assert text_of(by_id(response, f"id_{field}_error")) == message
    assert link(response, "Download CSV") is None


def test_the_report_csv_link_downloads_the_window_and_is_audited(auditor, trail):
    page = auditor.get(f"/audit/reports/refused-attempts/?since={iso(T0)}&period=week")

    response = auditor.get(link(page, "Download CSV"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == ",".join(REPORTS["refused-attempts"].columns) and len(lines) == 5
    [exported] = recorded("audit.report_exported")
    assert (exported.target_id, exported.data["since"], exported.data["period"]) == (
        "refused-attempts",
        T0.isoformat(),
        "week",
    )


def test_an_unknown_report_is_a_404(auditor):
    assert auditor.get("/audit/reports/no-such-report/").status_code == 404


# --- configuration changes ----------------------------------------------------------------------


@pytest.fixture
def changed(cast: dict[str, Any], entitlement: Any) -> LogEntry:
    entitlement.refresh_from_db()
    with set_actor(cast["secadmin"]):
        entitlement.max_duration_seconds = 4 * 3600
        entitlement.save()
    return LogEntry.objects.latest("id")


def test_configuration_changes_show_who_changed_what(auditor, changed):
    response = auditor.get("/audit/changes/?model=approvals.entitlement&actor=secadmin")

    assert response.status_code == 200
    [row] = _rows(response)
    cells = [text_of(td) for td in row]
    assert cells[1:] == [
        "secadmin",
        "approvals.entitlement",
        f"dkm-test (id {changed.object_pk})",
        "update",
        "max_duration_seconds: 28800 → 14400",
    ]
    assert "approvals.entitlement" in {o.attrs.get("value") for o in elements(response, "option")}


def test_change_filters_narrow_the_list(auditor, changed):
    def listed(query: str) -> list[tuple[str, str]]:
        response = auditor.get(f"/audit/changes/?{query}")
        assert response.status_code == 200
        return [(text_of(row[2]), text_of(row[4])) for row in _rows(response) if len(row) == 6]

    assert listed(f"model=approvals.entitlement&object_pk={changed.object_pk}") == [
        ("approvals.entitlement", "update"),
        ("approvals.entitlement", "create"),
    ]
    assert listed("actor=secadmin") == [("approvals.entitlement", "update")]
    assert listed("actor=legal1a") == []
    assert listed(f"since={iso(changed.timestamp + timedelta(seconds=1))}") == []


@pytest.mark.parametrize(
    "query, field",
    [
        ("model=approvals", "model"),
        ("model=nothing.here", "model"),
        ("since=soon", "since"),
        ("actor=" + "x" * 151, "actor"),
    ],
)
def test_a_bad_change_filter_is_a_400_beside_its_field(auditor, cast, query, field):
    response = auditor.get(f"/audit/changes/?{query}")

    assert response.status_code == 400
    assert by_id(response, f"id_{field}_error").tag == "ul"


def test_change_pages_walk_by_id_without_offset_or_count(auditor, cast):
    with CaptureQueriesContext(connection) as queries:
        first = auditor.get("/audit/changes/?page_size=3")
        second = auditor.get("/audit/changes/" + link(first, "Older →"))

    ids = [int(text_of(row[3]).rsplit("id ", 1)[1].rstrip(")")) for row in _rows(first)]
    assert len(ids) == 3 and second.status_code == 200
    assert not [q for q in queries.captured_queries if "OFFSET" in q["sql"].upper() or "COUNT(" in q["sql"].upper()]
