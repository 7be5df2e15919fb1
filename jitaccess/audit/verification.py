"""Walk the chain and report the first row that does not fit."""

from __future__ import annotations

from dataclasses import dataclass

from jitaccess.audit.chain import GENESIS_HASH, hash_of_row
from jitaccess.audit.models import AuditEvent


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_invalid_seq: int | None = None
    reason: str = ""


def verify_chain(*, chunk_size: int = 2000) -> ChainReport:
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for row in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        if row.seq != expected_seq:
            # A gap means deleted rows; a repeat or step back cannot happen with a unique seq.
            return ChainReport(False, checked, expected_seq, f"event {expected_seq} is missing")
        if row.prev_hash != prev_hash:
            return ChainReport(False, checked, row.seq, "does not link to the previous event")
        if hash_of_row(row) != row.hash:
            return ChainReport(False, checked, row.seq, "content does not match its hash")
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
    return ChainReport(True, checked)
