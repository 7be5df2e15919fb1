"""What auditors take away — event exports and report downloads — and the files they get.

Each download is recorded in the trail in its own committed transaction before a byte is sent:
if that record cannot be written, there is no download (fail closed, invariant 12).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from itertools import islice
from typing import Any

from django.db import transaction
from django.http import StreamingHttpResponse

from jitaccess import clock
from jitaccess.audit.reports import ReportWindow
from jitaccess.audit.selectors import EventFilters, events_head_seq, events_matching
from jitaccess.audit.services import audit_record

# Rows per database round trip while streaming; memory stays flat whatever the trail's size.
EXPORT_CHUNK_ROWS = 2000
LINES_PER_WRITE = 500


def events_export_open(filters: EventFilters, *, file_format: str, acting_user: Any) -> Iterator[dict[str, Any]]:
    """Record the export, then return its rows (``AuditEvent`` values, ascending ``seq``), read
    lazily in chunks. The rows end at the head of the trail when the export was recorded, and
    that event says so (``through_seq``), so the file and the record describe the same range."""
    through_seq = events_head_seq()
    with transaction.atomic():
        audit_record(
            "audit.exported",
            actor=acting_user,
            data={"format": file_format, "filters": filters.as_data(), "through_seq": through_seq},
        )
    rows = events_matching(filters).filter(seq__lte=through_seq).values()
    return rows.iterator(chunk_size=EXPORT_CHUNK_ROWS)


EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "grant",
    "outcome",
    "ip",
    "correlation_id",
    "data",
    "prev_hash",
    "hash",
)


def event_export_record(row: dict[str, Any]) -> dict[str, Any]:
    """One ``.values()`` row as the API shows an event (AuditEventSerializer), written out by hand:
    at a million rows a serializer per row is most of the export's time."""
    at = row["at"].astimezone(UTC).isoformat()
    return {
        "seq": row["seq"],
        "at": at[:-6] + "Z" if at.endswith("+00:00") else at,
        "actor": row["actor_name"] or None,
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "grant": row["grant_id"],
        "outcome": row["outcome"],
        "ip": row["ip"],
        "correlation_id": row["correlation_id"],
        "data": row["data"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


def report_export_record(name: str, window: ReportWindow, *, file_format: str, acting_user: Any) -> None:
    """Record that a report leaves the system, before it is computed and sent."""
    with transaction.atomic():
        audit_record(
            "audit.report_exported",
            actor=acting_user,
            target_type="report",
            target_id=name,
            data={"format": file_format, **window.as_data()},
        )


# --- files ---------------------------------------------------------------------------------------


def jsonl_lines(columns: Sequence[str], records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps({column: record[column] for column in columns}, ensure_ascii=False) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula; an apostrophe in front
# keeps it text. Values already starting with an apostrophe get one too, so readers can strip
# exactly one and always recover the value.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_lines(columns: Sequence[str], records: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[str]) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(columns)
    for record in records:
        yield line(csv_cell(record[column]) for column in columns)


@dataclass(frozen=True)
class FileFormat:
    extension: str
    content_type: str
    lines: Callable[[Sequence[str], Iterable[dict[str, Any]]], Iterator[str]]


FILE_FORMATS = {
    "jsonl": FileFormat("jsonl", "application/x-ndjson; charset=utf-8", jsonl_lines),
    "csv": FileFormat("csv", "text/csv; charset=utf-8", csv_lines),
}


def _in_writes(lines: Iterator[str]) -> Iterator[bytes]:
    while chunk := "".join(islice(lines, LINES_PER_WRITE)):
        yield chunk.encode()


def download_response(
    basename: str, file_format: str, columns: Sequence[str], records: Iterable[dict[str, Any]]
) -> StreamingHttpResponse:
    """A streamed attachment; ``records`` are consumed only as the client reads."""
    kind = FILE_FORMATS[file_format]
    response = StreamingHttpResponse(_in_writes(kind.lines(columns, records)), content_type=kind.content_type)
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{basename}-{stamp}.{kind.extension}"'
    # Audit data is sensitive: no browser or proxy keeps a copy.
    response["Cache-Control"] = "no-store"
    return response
