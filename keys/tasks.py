"""Thin Celery tasks: ids in, services do the work. No task carries a value or key material."""

from __future__ import annotations

from celery import shared_task

from jitaccess.audit.context import audit_context
from keys import services
from keys.models import KeyRing, KeyState


@shared_task(ignore_result=True)
def rewrap_keyring(keyring_id: int) -> dict[str, int]:
    """Move the ring's data keys to its primary version, then archive the versions left unused."""
    keyring = KeyRing.objects.filter(pk=keyring_id).first()
    if keyring is None:
        return {}
    with audit_context():
        result = services.keyring_rewrap(keyring)
        archived = services.keyversions_archive_unreferenced(keyring)
    return {
        "rewrapped": result.rewrapped,
        "skipped": result.skipped,
        "failed": result.failed,
        "archived": len(archived),
    }


@shared_task(ignore_result=True)
def key_maintenance() -> dict[str, list[str]]:
    """Beat: rotate the rings that are due, then finish any rewrap a crash or outage left undone.

    Safe on several beat hosts at once: rotation re-checks under a row lock, and rewrap writes
    with compare-and-swap.
    """
    with audit_context():
        rotated = services.keyrings_rotate_due()
    # A former primary still "active" means its rewrap has not finished (or not started).
    resumed = []
    for keyring in KeyRing.objects.filter(versions__state=KeyState.ACTIVE).distinct():
        rewrap_keyring.delay(keyring.pk)
        resumed.append(keyring.name)
    return {"rotated": rotated, "rewrapping": resumed}
