"""Exports of the trail: streamed, read in chunks, faithful in both formats, and audited before
the first byte leaves (fail closed)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.db.models.query import QuerySet
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from jitaccess.audit import exports
from jitaccess.audit.context import audit_context
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.services import audit_record
from tests.audit.conftest import CONTRACT_FIELDS, errors_of

API = "/api/v1"
INT_COLUMNS = {"seq", "grant"}
NULLABLE_COLUMNS = {"actor", "grant", "ip"}


@pytest.fixture
def events(cast: dict[str, Any]) -> list[AuditEvent]:
    """Events with awkward content: unicode, quotes, commas, newlines and would-be formulas."""
    written = []
    with audit_context(correlation_id="export-test-0001", ip="2001:db8::7"):
        for i in range(7):
            written.append(
                audit_record(
                    "secret.reveal_denied",
                    actor=cast["admin2"] if i % 2 else None,
                    target_type="secret",
                    target_id='=HYPERLINK("http://x")' if i == 3 else str(i),
                    grant_id=40 + i if i % 3 == 0 else None,
                    outcome="denied",
                    data={"reason": f'ünïcode, "quoted"\nline {i}', "n": i, "nested": {"list": [1, "-2"]}},
                )
            )
    return written


def listed_rows(client: APIClient, query: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/audit/events/?{query}&page_size=200")
    assert response.status_code == 200
    return list(reversed(response.json()["results"]))  # the list is newest first; exports oldest first


def content_of(response: Any) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def csv_value(column: str, cell: str) -> Any:
    if cell == "" and column in NULLABLE_COLUMNS:
        return None
    if cell.startswith("'"):
        cell = cell[1:]
    if column in INT_COLUMNS:
        return int(cell)
    if column == "data":
        return json.loads(cell)
    return cell


def test_a_jsonl_export_streams_the_same_rows_as_the_list(auditor_api, events):
    response = auditor_api.get(f"{API}/audit/export/?format=jsonl&action=secret.reveal_denied")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    assert response["Content-Disposition"].endswith('.jsonl"')
    assert response["Cache-Control"] == "no-store"
    lines = content_of(response).splitlines()
    assert [json.loads(line) for line in lines] == listed_rows(auditor_api, "action=secret.reveal_denied")
    assert len(lines) == 7


def test_a_csv_export_parses_back_to_the_same_rows(auditor_api, events):
    response = auditor_api.get(f"{API}/audit/export/?format=csv&target_type=secret")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith('.csv"')
    reader = csv.DictReader(io.StringIO(content_of(response), newline=""))
    rows = [{column: csv_value(column, cell) for column, cell in row.items()} for row in reader]
    assert set(CONTRACT_FIELDS) <= set(reader.fieldnames)
    assert rows == listed_rows(auditor_api, "target_type=secret")


def test_a_csv_export_never_hands_a_spreadsheet_a_formula(auditor_api, events):
    text = content_of(auditor_api.get(f"{API}/audit/export/?format=csv&target_type=secret"))

    cells = [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
    assert '\'=HYPERLINK("http://x")' in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]


def test_without_a_format_the_export_is_jsonl(auditor_api, events):
    response = auditor_api.get(f"{API}/audit/export/?outcome=denied")

    assert response["Content-Type"].startswith("application/x-ndjson")
    assert len(content_of(response).splitlines()) == 7


@pytest.mark.parametrize(
    "query, field",
    [("format=json", "format"), ("format=xlsx", "format"), ("format=csv&since=later", "since")],
)
def test_a_bad_export_request_is_a_400_and_exports_nothing(auditor_api, events, query, field):
    assert field in errors_of(auditor_api.get(f"{API}/audit/export/?{query}"))
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_each_export_is_audited_with_its_format_and_filters(cast, auditor_api, events):
    head = AuditEvent.objects.order_by("-seq").first().seq

    response = auditor_api.get(f"{API}/audit/export/?format=csv&outcome=denied&since=2020-01-01T00:00:00Z&grant=40")

    # Recorded before the response is read: the record does not wait for the download.
    (record,) = AuditEvent.objects.filter(action="audit.exported")
    assert record.actor == cast["auditor"]
    assert record.data == {
        "format": "csv",
        "filters": {"outcome": "denied", "since": "2020-01-01T00:00:00+00:00", "grant": 40},
        "through_seq": head,
    }
    assert len(list(csv.DictReader(io.StringIO(content_of(response))))) == 1


def test_an_export_ends_at_the_head_it_recorded(auditor_api, events):
    response = auditor_api.get(f"{API}/audit/export/?format=jsonl&target_type=secret")
    later = audit_record("secret.reveal_denied", target_type="secret", target_id="late", outcome="denied")

    exported = [json.loads(line)["seq"] for line in content_of(response).splitlines()]

    through = AuditEvent.objects.get(action="audit.exported").data["through_seq"]
    assert exported == [event.seq for event in events]
    assert max(exported) <= through < later.seq


def test_rows_are_read_through_a_chunked_iterator_only_while_streaming(auditor_api, events, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_CHUNK_ROWS", 3)
    calls = []
    real_iterator = QuerySet.iterator

    def spy(self: QuerySet, chunk_size: int | None = None) -> Any:
        calls.append((self.model, chunk_size))
        return real_iterator(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)

    response = auditor_api.get(f"{API}/audit/export/?format=jsonl&outcome=denied")
    first = next(iter(response.streaming_content))

    assert calls == [(AuditEvent, 3)]
    assert json.loads(first.decode().splitlines()[0])["seq"] == events[0].seq


def test_no_audit_record_means_no_export(events, audit_unavailable, auditor_seeing_errors):
    audit_unavailable("jitaccess.audit.exports")

    response = auditor_seeing_errors.get(f"{API}/audit/export/?format=jsonl")

    assert response.status_code == 500
    assert not isinstance(response, StreamingHttpResponse)
    assert b"secret.reveal_denied" not in response.content
    assert not AuditEvent.objects.filter(action="audit.exported").exists()
