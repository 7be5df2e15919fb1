"""Handing Celery tasks to the broker: once the caller's transaction commits, and from beat sweeps.

A rolled-back action enqueues nothing. A broker outage never fails the committed action: it is
logged, ``on_failure`` may undo a claim, and a beat sweep picks the work up when it comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from jitaccess import clock

logger = logging.getLogger(__name__)
CLAIM_BATCH = 500


def enqueue_after_commit(
    task: Any,
    *,
    args: list[Any],
    what: str,
    eta: datetime | None = None,
    countdown: float | None = None,
    on_failure: Callable[[], None] | None = None,
) -> None:
    """``task.apply_async(args)`` after commit; ``what`` names the work in the warning if it fails."""

    options = {name: value for name, value in (("eta", eta), ("countdown", countdown)) if value is not None}

    def send() -> None:
        try:
            task.apply_async(args=args, **options)
        except Exception:  # noqa: BLE001 — a broker outage must not fail the committed action
            logger.warning("could not enqueue %s", what, exc_info=True)
            if on_failure is not None:
                on_failure()

    transaction.on_commit(send)


def claim_in_batches(due: Callable[[datetime], QuerySet], claim: Callable[[Any, datetime], None]) -> int:
    """What beat sweeps share: lock the rows ``due(now)`` selects with ``skip_locked`` and
    ``claim(row, now)`` each in the same transaction, batch by batch; returns how many.

    Two beat hosts never claim one row twice: the second skips rows the first holds and, once
    they commit, no longer selects them (``claim`` stamps or moves what ``due`` filters on).
    """
    total = 0
    while True:
        with transaction.atomic():
            now = clock.now()
            batch = list(due(now).select_for_update(skip_locked=True)[:CLAIM_BATCH])
            for row in batch:
                claim(row, now)
        total += len(batch)
        if len(batch) < CLAIM_BATCH:
            return total
