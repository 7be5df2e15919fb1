"""Liveness and readiness probes for load balancers and orchestrators.

/readyz answers which check failed, as booleans only: the reasons (which may name an HSM token or
key label) go to the log, never to an unauthenticated caller.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jitaccess.celery import app as celery_app

log = logging.getLogger(__name__)

# An HSM round trip per probe would load it for nothing: a success is believed this long.
ROOT_KEYS_OK_SECONDS = 10.0
_root_keys_ok_at: float | None = None
_root_keys_lock = threading.Lock()


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 — any failure means "not ready"
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


def _open_one_primary_per_provider() -> None:
    """Open the primary KEK of one key ring per provider in use, and reach that ring's root key now.

    Opening proves the configured root key is the one that wrapped the stored KEKs (a restore with
    the wrong JIT_ROOT_KEY fails here); ``check`` asks the provider afresh, since an opened KEK may
    come from the process cache after a customer removed their HSM key.
    """
    from keys.kek import kek_open
    from keys.models import KeyRing, KeyState, KeyVersion
    from keys.providers import provider_for

    for provider in KeyRing.objects.order_by("provider").values_list("provider", flat=True).distinct():
        row = (
            KeyVersion.objects.filter(keyring__provider=provider, state=KeyState.PRIMARY)
            .select_related("keyring")
            .order_by("keyring_id")
            .first()
        )
        if row is not None:
            kek_open(row, row.keyring)
            provider_for(provider).check(row.keyring.provider_key)


def _root_keys_ok() -> bool:
    global _root_keys_ok_at
    if _root_keys_ok_at is not None and time.monotonic() - _root_keys_ok_at < ROOT_KEYS_OK_SECONDS:
        return True
    try:
        _open_one_primary_per_provider()
    except Exception as exc:  # noqa: BLE001 — any failure means "not ready"
        from keys.errors import KeyFailure

        # Key errors are written to be safe to log; anything else is named by its type only.
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyFailure) else type(exc).__name__
        log.warning("readiness: the root-key provider check failed (%s)", reason)
        with _root_keys_lock:
            _root_keys_ok_at = None
        return False
    with _root_keys_lock:
        _root_keys_ok_at = time.monotonic()
    return True


def forget_root_keys_answer() -> None:
    """Make the next probe ask the provider again (tests; a changed configuration)."""
    global _root_keys_ok_at
    with _root_keys_lock:
        _root_keys_ok_at = None


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    checks = {"database": database, "broker": _broker_ok(), "root_keys": database and _root_keys_ok()}
    ready = all(checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
