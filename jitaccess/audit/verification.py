"""Verify the trail: walk the hash chain and hold it against the signed checkpoints.

The chain alone catches an edited, deleted, inserted or reordered row. A signed checkpoint
(in the database and, above all, in the sink outside it) also catches a rewrite that recomputed
every later hash, and a trimmed tail, which leaves a shorter chain that is consistent in itself.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction

from jitaccess.audit.chain import GENESIS_HASH, event_hash, hash_of_row
from jitaccess.audit.checkpoints import checkpoint_entry, latest_checkpoint, parse_entry_time
from jitaccess.audit.models import AuditCheckpoint, AuditEvent
from jitaccess.audit.signing import signature_problem
from jitaccess.audit.sink import sink_description, sink_is_readable, sink_read

ROW_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "grant_id",
    "outcome",
    "ip",
    "correlation_id",
    "data",
    "prev_hash",
    "hash",
)
_HASHED_FIELDS = ROW_FIELDS[:13]  # everything but the row's own hash


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_invalid_seq: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Anchor:
    """A checkpoint whose signature verified: "event ``seq`` has hash ``head_hash``"."""

    seq: int
    head_hash: str
    source: str  # "sink line 12" / "database"
    at: str


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    checked: int
    first_invalid_seq: int | None
    reason: str
    last_checkpoint: dict[str, Any] | None
    checkpoints_checked: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_invalid_seq": self.first_invalid_seq,
            "reason": self.reason,
            "last_checkpoint": self.last_checkpoint,
            "checkpoints_checked": self.checkpoints_checked,
            "problems": self.problems,
            "sink": sink_description(),
        }


# PostgreSQL formats the time exactly as jitaccess.canonical.canonical_time does, sparing Python a
# datetime parse and strftime per row: at a million rows that is most of the difference between
# the ORM path and this one.
_PG_ROWS = (
    "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor_id, actor_name, action,"
    " target_type, target_id, grant_id, outcome, ip, correlation_id, data, prev_hash, hash"
    " FROM audit_auditevent WHERE seq >= %s AND seq <= %s ORDER BY seq"
)


def _rows(seq_from: int, seq_to: int | None, chunk_size: int) -> Iterator[tuple[Any, ...]]:
    if connection.vendor != "postgresql":
        rows = AuditEvent.objects.filter(seq__gte=seq_from)
        if seq_to is not None:
            rows = rows.filter(seq__lte=seq_to)
        yield from rows.order_by("seq").values_list(*ROW_FIELDS).iterator(chunk_size=chunk_size)
        return
    loads = json.loads
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_PG_ROWS, [seq_from, seq_to if seq_to is not None else 2**62])
        while batch := cursor.fetchmany(chunk_size):
            for row in batch:
                yield (*row[:11], loads(row[11]), row[12], row[13])


@dataclass(frozen=True)
class _Walked:
    report: ChainReport
    last_good: int  # the last seq that checked out
    first_prev: str | None  # prev_hash of the first row walked (links a segment to the one before)
    last_hash: str | None


def _walk(
    *,
    anchors: dict[int, list[Anchor]] | None = None,
    seq_from: int = 1,
    seq_to: int | None = None,
    prev_hash: str | None = GENESIS_HASH,
    anchored_seq: int | None = None,
    chunk_size: int = 5000,
) -> _Walked:
    """Check every row from ``seq_from`` to ``seq_to``.

    ``prev_hash=None`` walks a segment: its first row's link is checked by the caller, who knows
    the previous segment's last hash.
    """
    anchors = anchors or {}
    expected_seq = seq_from
    checked = 0
    first_prev = None
    anchored_seq = seq_from - 1 if anchored_seq is None else anchored_seq  # last event a checkpoint vouched for

    def failed(first_invalid: int, reason: str, last_good: int) -> _Walked:
        return _Walked(ChainReport(False, checked, first_invalid, reason), last_good, first_prev, prev_hash)

    for row in _rows(seq_from, seq_to, chunk_size):
        seq, prev, own = row[0], row[12], row[13]
        if seq != expected_seq:
            # A gap means deleted rows; a repeat or step back cannot happen with a unique seq.
            return failed(expected_seq, f"event {expected_seq} is missing", expected_seq - 1)
        if first_prev is None:
            first_prev = prev
            prev_hash = prev if prev_hash is None else prev_hash
        if prev != prev_hash:
            return failed(seq, "does not link to the previous event", seq - 1)
        if event_hash(**dict(zip(_HASHED_FIELDS, row[:13], strict=True))) != own:
            return failed(seq, "content does not match its hash", seq - 1)
        for anchor in anchors.get(seq, ()):
            if anchor.head_hash != own:
                return failed(
                    anchored_seq + 1,
                    f"events {anchored_seq + 1}..{seq} were rewritten: the chain no longer ends in the hash "
                    f"signed at {anchor.at} for event {seq} ({anchor.source})",
                    anchored_seq,
                )
        if seq in anchors:
            anchored_seq = seq
        prev_hash = own
        expected_seq += 1
        checked += 1
    return _Walked(ChainReport(True, checked), expected_seq - 1, first_prev, prev_hash)


def _walk_segment(args: tuple[Any, ...]) -> _Walked:
    anchors, seq_from, seq_to, anchored_seq = args
    try:
        return _walk(anchors=anchors, seq_from=seq_from, seq_to=seq_to, prev_hash=None, anchored_seq=anchored_seq)
    finally:
        connections.close_all()


def _walk_all(anchors: dict[int, list[Anchor]]) -> _Walked:
    """The whole chain; on PostgreSQL, long chains are split over processes (hashing is the cost).

    Each process checks its segment's rows and links; the segments' ends are then linked here, so
    the result is the same as one sequential walk.
    """
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    workers = min(settings.JIT_AUDIT_VERIFY_PROCESSES, os.cpu_count() or 1)
    # Forking is safe only from a single-threaded process (manage.py, a prefork Celery worker):
    # in a threaded web worker another thread may hold a lock the child would inherit forever.
    forkable = threading.active_count() == 1
    if (
        connection.vendor != "postgresql"
        or workers < 2
        or not forkable
        or head < settings.JIT_AUDIT_VERIFY_PARALLEL_FROM
    ):
        return _walk(anchors=anchors)
    step = -(-head // workers)
    bounds = [(lo, min(lo + step - 1, head)) for lo in range(1, head + 1, step)]
    jobs = [(anchors, lo, hi, max((a for a in anchors if a < lo), default=lo - 1)) for lo, hi in bounds]
    connections.close_all()  # children must not share this process's database connection
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        segments = list(pool.map(_walk_segment, jobs))
    checked, prev_hash = 0, GENESIS_HASH
    for (lo, _), segment in zip(bounds, segments, strict=True):
        if segment.first_prev is not None and segment.first_prev != prev_hash:
            return _Walked(ChainReport(False, checked, lo, "does not link to the previous event"), lo - 1, None, None)
        if not segment.report.ok:
            report = segment.report
            return _Walked(
                ChainReport(False, checked + report.checked, report.first_invalid_seq, report.reason),
                segment.last_good,
                None,
                None,
            )
        checked += segment.report.checked
        prev_hash = segment.last_hash or prev_hash
    return _Walked(ChainReport(True, checked), head, None, prev_hash)


def verify_chain(*, chunk_size: int = 5000) -> ChainReport:
    """The hash chain on its own (no checkpoints)."""
    return _walk(chunk_size=chunk_size).report


def _checkpoint_problem(entry: dict[str, Any]) -> str | None:
    try:
        return signature_problem(
            seq=int(entry["seq"]),
            head_hash=str(entry["head_hash"]),
            at=parse_entry_time(str(entry["at"])),
            public_key=str(entry["public_key"]),
            signature=str(entry["signature"]),
        )
    except (KeyError, TypeError, ValueError):
        return "is not a well-formed checkpoint"


def _collect_anchors() -> tuple[dict[int, list[Anchor]], list[str], int]:
    anchors: dict[int, list[Anchor]] = {}
    problems: list[str] = []
    checked = 0

    def add(entry: dict[str, Any], source: str) -> None:
        problem = _checkpoint_problem(entry)
        if problem:
            problems.append(f"checkpoint ({source}) {problem}")
            return
        anchor = Anchor(int(entry["seq"]), str(entry["head_hash"]), source, str(entry["at"]))
        anchors.setdefault(anchor.seq, []).append(anchor)

    in_sink: set[tuple[int, str]] = set()
    for line in sink_read():
        checked += 1
        if line.entry is None:
            problems.append(f"checkpoint (sink line {line.number}) is not a well-formed checkpoint")
            continue
        add(line.entry, f"sink line {line.number}")
        in_sink.add((line.entry.get("seq"), line.entry.get("signature")))
    for checkpoint in AuditCheckpoint.objects.order_by("seq").iterator(chunk_size=2000):
        checked += 1
        entry = checkpoint_entry(checkpoint)
        add(entry, "database")
        # Every stored checkpoint was appended to the sink before it committed.
        if sink_is_readable() and (entry["seq"], entry["signature"]) not in in_sink:
            problems.append(f"checkpoint for event {entry['seq']} is in the database but not in the sink")
    return anchors, problems, checked


def verify_audit() -> AuditReport:
    """The chain, every checkpoint's signature, and the chain against every checkpoint."""
    anchors, problems, checkpoints_checked = _collect_anchors()
    walked = _walk_all(anchors)
    chain, last_good = walked.report, walked.last_good
    first_invalid, reason = chain.first_invalid_seq, chain.reason
    if chain.ok:
        beyond = [a for seq, found in anchors.items() if seq > last_good for a in found]
        if beyond:
            furthest = max(beyond, key=lambda a: a.seq)
            first_invalid = last_good + 1
            reason = (
                f"the trail ends at event {last_good} but a checkpoint signed at {furthest.at} covers event "
                f"{furthest.seq} ({furthest.source}): events {last_good + 1}..{furthest.seq} were removed"
            )
    if not reason and problems:
        reason = problems[0]
    return AuditReport(
        ok=not reason,
        checked=chain.checked,
        first_invalid_seq=first_invalid,
        reason=reason,
        last_checkpoint=latest_checkpoint(),
        checkpoints_checked=checkpoints_checked,
        problems=problems,
    )


def chain_proof(events: Iterable[AuditEvent]) -> dict[str, Any]:
    """Evidence that ``events`` are in the chain unchanged, for an evidence pack.

    Each event's hash is recomputed; the chain from the last one up to the first signed
    checkpoint at or after it is walked, and that checkpoint's signature checked. Anyone holding
    the public key can repeat the computation from the pack alone (the algorithm is named).
    """
    events = list(events)
    items = [
        {"seq": e.seq, "prev_hash": e.prev_hash, "hash": e.hash, "hash_ok": hash_of_row(e) == e.hash} for e in events
    ]
    proof: dict[str, Any] = {
        "algorithm": "sha256 over canonical JSON of the event fields and prev_hash; checkpoints Ed25519",
        "events": items,
        "all_hashes_ok": all(item["hash_ok"] for item in items),
        "checkpoint": None,
        "checkpoint_signature_ok": None,
        "linked_to_checkpoint": None,
    }
    if not events:
        return proof
    last = max(events, key=lambda e: e.seq)
    anchor_row = AuditCheckpoint.objects.filter(seq__gte=last.seq).order_by("seq").first()
    if anchor_row is None:
        return proof
    entry = checkpoint_entry(anchor_row)
    segment = _walk(seq_from=last.seq + 1, seq_to=anchor_row.seq, prev_hash=last.hash).report
    end_hash = (
        AuditEvent.objects.filter(seq=anchor_row.seq).values_list("hash", flat=True).first()
        if anchor_row.seq != last.seq
        else last.hash
    )
    proof.update(
        checkpoint=entry,
        checkpoint_signature_ok=_checkpoint_problem(entry) is None,
        linked_to_checkpoint=segment.ok and end_hash == anchor_row.head_hash,
    )
    return proof
