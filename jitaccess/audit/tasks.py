"""Beat job: sign the chain head and keep a copy outside the database."""

from __future__ import annotations

from celery import shared_task

from jitaccess.audit.checkpoints import checkpoint_write


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def audit_checkpoint() -> int | None:
    """The seq of the new checkpoint, or None when the head has not moved (safe to run twice)."""
    checkpoint = checkpoint_write()
    return checkpoint.seq if checkpoint else None
