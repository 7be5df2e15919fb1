"""Signed checkpoints of the chain head, in the database and in the sink outside it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction

from jitaccess import clock
from jitaccess.audit.models import AuditCheckpoint, AuditEvent
from jitaccess.audit.signing import sign_checkpoint
from jitaccess.audit.sink import sink_append
from jitaccess.canonical import canonical_time


def checkpoint_entry(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The public form of a checkpoint: what the sink holds and what the API shows."""
    return {
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "at": canonical_time(checkpoint.at),
        "public_key": checkpoint.public_key,
        "signature": checkpoint.signature,
    }


def parse_entry_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def checkpoint_write() -> AuditCheckpoint | None:
    """Sign the current head, store it and append it to the sink; None when nothing is new.

    Safe on several beat hosts: the unique ``seq`` makes a second writer of the same head wait
    for the first and then give up, so the sink never gets a duplicate from a rolled-back row.
    The sink is written before the commit; if the commit then fails, the extra sink line still
    names a real head and verifies.
    """
    with transaction.atomic():
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        if head is None:
            return None
        last = AuditCheckpoint.objects.order_by("-seq").values_list("seq", flat=True).first()
        if last is not None and last >= head[0]:
            return None
        seq, head_hash = head
        at = clock.now()
        public_key, signature = sign_checkpoint(seq=seq, head_hash=head_hash, at=at)
        try:
            with transaction.atomic():
                checkpoint = AuditCheckpoint.objects.create(
                    seq=seq, head_hash=head_hash, at=at, public_key=public_key, signature=signature
                )
        except IntegrityError:
            return None
        sink_append(checkpoint_entry(checkpoint))
    return checkpoint


def latest_checkpoint() -> dict[str, Any] | None:
    checkpoint = AuditCheckpoint.objects.order_by("-seq").first()
    return checkpoint_entry(checkpoint) if checkpoint else None


def checkpoint_covering(seq: int) -> dict[str, Any] | None:
    """The earliest checkpoint whose head is at or after ``seq`` (it vouches for that event)."""
    checkpoint = AuditCheckpoint.objects.filter(seq__gte=seq).order_by("seq").first()
    return checkpoint_entry(checkpoint) if checkpoint else None
