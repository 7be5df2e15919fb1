"""Writes of the webhooks app: endpoints (security admins) and the outcome of each attempt (the worker).

Every change of an endpoint is one transaction with its audit event. A signing secret is made
here, returned once to the caller and stored only sealed, as a secret of the webhook key ring.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from approvals.models import SecurityGroup
from jitaccess import clock
from jitaccess.audit.services import audit_record
from jitaccess.errors import Conflict, InvalidInput, NotAllowed
from jitaccess.roles import is_security_admin
from jitaccess.webhooks import sending, signing
from jitaccess.webhooks.dispatch import MAX_COUNTDOWN_SECONDS, backoff_seconds, delivery_enqueue, in_flight_window
from jitaccess.webhooks.events import WEBHOOK_EVENT_SET, WEBHOOK_EVENTS
from jitaccess.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from keys import services as key_services
from keys.errors import KeyFailure
from keys.models import KeyRing, SecretKind
from keys.reveal import server_secret_value

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 100
MAX_URL_CHARS = 2000


# --- input --------------------------------------------------------------------------------------


def name_checked(name: Any) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise InvalidInput("name", f"Name the receiver (1 to {MAX_NAME_CHARS} characters).")
    return name


def url_checked(url: Any) -> str:
    """An absolute https URL (http only where JIT_WEBHOOK_ALLOW_HTTP), with a host and no user or password."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url", "The receiver's URL is required.")
    url = url.strip()
    if len(url) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput("url", f"A URL of at most {MAX_URL_CHARS} characters, without spaces.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidInput("url", "Not a valid URL.") from None
    allowed = ("https", "http") if settings.JIT_WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise InvalidInput("url", "Only https URLs are accepted." if len(allowed) == 1 else "An http(s) URL.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        # The URL is stored and listed in clear: a password in it would be a credential in clear.
        raise InvalidInput("url", "The URL may not carry a user name or password; receivers check the signature.")
    if not parts.hostname:
        raise InvalidInput("url", "The URL needs a host.")
    if parts.fragment:
        raise InvalidInput("url", "The URL may not have a #fragment.")
    return url


def events_checked(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(item, str) for item in events):
        raise InvalidInput("events", f"Choose at least one event: {', '.join(WEBHOOK_EVENTS)}.")
    unknown = sorted(set(events) - WEBHOOK_EVENT_SET)
    if unknown:
        raise InvalidInput("events", f"Unknown event {', '.join(unknown)}; one of: {', '.join(WEBHOOK_EVENTS)}.")
    return [name for name in WEBHOOK_EVENTS if name in set(events)]


def _require_security_admin(user: Any) -> None:
    if not is_security_admin(user):
        raise NotAllowed("Only security admins manage webhooks.")


# --- endpoints ----------------------------------------------------------------------------------


def _signing_keyring() -> KeyRing:
    """The key ring named by JIT_WEBHOOK_KEYRING, made with its own empty security group on first use.

    The group has no members, so no one can reveal a signing secret through the secrets API.
    """
    name = settings.JIT_WEBHOOK_KEYRING
    ring = KeyRing.objects.filter(name=name).first()
    if ring is not None:
        return ring
    group, _ = SecurityGroup.objects.get_or_create(
        name=name, defaults={"description": "Seals the signing secrets of webhook endpoints; keep it without members."}
    )
    try:
        return key_services.keyring_create(
            name=name, security_group=group, description="Signing secrets of webhook endpoints.", acting_user=None
        )
    except InvalidInput:
        return KeyRing.objects.get(name=name)  # made meanwhile by a concurrent first endpoint


def endpoint_create(*, name: Any, url: Any, events: Any, acting_user: Any) -> tuple[str, WebhookEndpoint]:
    """A new endpoint and its signing secret, returned in clear only here."""
    _require_security_admin(acting_user)
    name, url, events = name_checked(name), url_checked(url), events_checked(events)
    secret = signing.new_signing_secret()
    with transaction.atomic():
        now = clock.now()
        stored = key_services.secret_create(
            keyring=_signing_keyring(),
            name=f"webhook-{uuid.uuid4().hex}",
            kind=SecretKind.GENERIC,
            metadata={"purpose": "webhook signing", "endpoint": name},
            value=secret,
            acting_user=acting_user,
            for_webhook=True,
        )
        endpoint = WebhookEndpoint.objects.create(
            name=name,
            url=url,
            events=events,
            signing_secret=stored,
            created_by=acting_user,
            created_at=now,
            updated_at=now,
        )
        audit_record(
            "webhook.created",
            actor=acting_user,
            target_type="webhook",
            target_id=endpoint.pk,
            data={"name": name, "url": url, "events": events, "signing_secret_id": stored.pk},
        )
    return secret, endpoint


def _locked_active(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if not endpoint.is_active:
        raise Conflict("This endpoint was deactivated; create a new one instead.")
    return endpoint


def endpoint_update(
    endpoint: WebhookEndpoint, *, acting_user: Any, name: Any = None, url: Any = None, events: Any = None
) -> WebhookEndpoint:
    """Change the name, URL and / or events; what is not given stays. Deliveries already made keep going."""
    _require_security_admin(acting_user)
    wanted = {
        "name": name_checked(name) if name is not None else None,
        "url": url_checked(url) if url is not None else None,
        "events": events_checked(events) if events is not None else None,
    }
    with transaction.atomic():
        endpoint = _locked_active(endpoint)
        changed = {
            field: [getattr(endpoint, field), value]
            for field, value in wanted.items()
            if value is not None and getattr(endpoint, field) != value
        }
        if not changed:
            return endpoint
        for field, (_, value) in changed.items():
            setattr(endpoint, field, value)
        endpoint.updated_at = clock.now()
        endpoint.save(update_fields=[*changed, "updated_at"])
        audit_record(
            "webhook.updated",
            actor=acting_user,
            target_type="webhook",
            target_id=endpoint.pk,
            data={"changed": changed},
        )
    return endpoint


def endpoint_secret_rotate(endpoint: WebhookEndpoint, *, acting_user: Any) -> tuple[str, WebhookEndpoint]:
    """A new signing secret, in force from the next attempt on; the old one stops signing at once."""
    _require_security_admin(acting_user)
    secret = signing.new_signing_secret()
    with transaction.atomic():
        endpoint = _locked_active(endpoint)
        stored = key_services.secret_update(
            endpoint.signing_secret, value=secret, acting_user=acting_user, for_webhook=True
        )
        endpoint.secret_rotated_at = endpoint.updated_at = clock.now()
        endpoint.save(update_fields=["secret_rotated_at", "updated_at"])
        audit_record(
            "webhook.secret_rotated",
            actor=acting_user,
            target_type="webhook",
            target_id=endpoint.pk,
            data={"name": endpoint.name, "value_version": stored.value_version},
        )
    return secret, endpoint


def endpoint_deactivate(endpoint: WebhookEndpoint, *, acting_user: Any) -> WebhookEndpoint:
    """Stop sending to the endpoint: nothing new is made for it, and its pending deliveries fail
    (listed as such). Deactivating twice changes nothing."""
    _require_security_admin(acting_user)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.is_active:
            return endpoint
        now = clock.now()
        endpoint.is_active = False
        endpoint.deactivated_at = endpoint.updated_at = now
        endpoint.save(update_fields=["is_active", "deactivated_at", "updated_at"])
        dropped = WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED,
            failed_at=now,
            next_attempt_at=None,
            last_error="The endpoint was deactivated before delivery.",
        )
        audit_record(
            "webhook.deactivated",
            actor=acting_user,
            target_type="webhook",
            target_id=endpoint.pk,
            data={"name": endpoint.name, "pending_dropped": dropped},
        )
    return endpoint


# --- deliveries ---------------------------------------------------------------------------------


def delivery_redeliver(delivery: WebhookDelivery, *, acting_user: Any) -> WebhookDelivery:
    """Send a failed delivery again, with a fresh set of attempts and the same delivery id."""
    _require_security_admin(acting_user)
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
        if delivery.status != DeliveryStatus.FAILED:
            raise Conflict(f"Only a failed delivery is sent again; this one is {delivery.status}.")
        if not delivery.endpoint.is_active:
            raise Conflict("The endpoint was deactivated; nothing is sent to it any more.")
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.failed_at = None
        delivery.next_attempt_at = clock.now() + in_flight_window()
        delivery.save(update_fields=["status", "attempts", "failed_at", "next_attempt_at"])
        audit_record(
            "webhook.redelivered",
            actor=acting_user,
            target_type="webhook",
            target_id=delivery.endpoint_id,
            data={"delivery": str(delivery.uuid), "event": delivery.action, "audit_seq": delivery.payload["audit_seq"]},
        )
        delivery_enqueue(delivery, attempt=1, claimed_until=delivery.next_attempt_at)
    return delivery


def _claim(delivery_id: int, attempt: int) -> bool:
    """Take attempt ``attempt`` of a pending delivery; False when another task already took it."""
    now = clock.now()
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, attempts=attempt - 1).update(
            attempts=attempt, last_attempt_at=now, next_attempt_at=now + in_flight_window()
        )
    )


def _signed_request(delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
    """Raises KeyFailure when the signing secret cannot be opened."""
    secret = server_secret_value(delivery.endpoint.signing_secret)
    body = json.dumps(
        {"id": str(delivery.uuid), **delivery.payload}, separators=(",", ":"), sort_keys=True, ensure_ascii=False
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "jitaccess-webhooks/1",
        signing.SIGNATURE_HEADER: signing.signature(secret, body, timestamp=int(time.time())),
        signing.EVENT_HEADER: delivery.action,
        signing.DELIVERY_HEADER: str(delivery.uuid),
    }
    return body, headers


def delivery_attempt(delivery_id: int, attempt: int) -> str | None:
    """Make attempt ``attempt`` of a delivery and record its outcome; None when it was not ours to make."""
    if not _claim(delivery_id, attempt):
        logger.info("webhook delivery %s attempt %s already taken or no longer pending", delivery_id, attempt)
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint__signing_secret__keyring").get(pk=delivery_id)
    try:
        body, headers = _signed_request(delivery)
    except KeyFailure as exc:
        answer = sending.Answer(None, f"The signing secret could not be opened ({exc.code}).")
    else:
        answer = sending.post(delivery.endpoint.url, body, headers, timeout=settings.JIT_WEBHOOK_TIMEOUT_SECONDS)
    return _outcome_record(delivery_id, attempt, answer)


def _outcome_record(delivery_id: int, attempt: int, answer: sending.Answer) -> str:
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
        if delivery.status != DeliveryStatus.PENDING or delivery.attempts != attempt:
            return delivery.status  # deactivated (or otherwise settled) while the request was out
        now = clock.now()
        delivery.last_status_code = answer.status
        delivery.last_error = answer.error[:300]
        fields = ["last_status_code", "last_error", "status", "next_attempt_at"]
        if answer.delivered:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED, now, None
            fields.append("delivered_at")
        elif attempt >= settings.JIT_WEBHOOK_MAX_ATTEMPTS:
            delivery.status, delivery.failed_at, delivery.next_attempt_at = DeliveryStatus.FAILED, now, None
            fields.append("failed_at")
            audit_record(
                "webhook.delivery_failed",
                target_type="webhook",
                target_id=delivery.endpoint_id,
                data={
                    "endpoint": delivery.endpoint.name,
                    "delivery": str(delivery.uuid),
                    "event": delivery.action,
                    "audit_seq": delivery.payload["audit_seq"],
                    "attempts": attempt,
                    "last_status_code": answer.status,
                    "last_error": delivery.last_error,
                },
            )
        else:
            wait = backoff_seconds(attempt)
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            if wait <= MAX_COUNTDOWN_SECONDS:
                delivery_enqueue(delivery, attempt=attempt + 1, claimed_until=delivery.next_attempt_at, countdown=wait)
            # A longer wait is the sweep's: it hands the delivery over once next_attempt_at is due.
        delivery.save(update_fields=fields)
    level = logging.INFO if answer.delivered else logging.WARNING
    logger.log(
        level,
        "webhook delivery %s (%s) to endpoint %s, attempt %s: %s",
        delivery.pk,
        delivery.action,
        delivery.endpoint_id,
        attempt,
        delivery.status if answer.delivered else f"{delivery.status}, {answer.error}",
    )
    return delivery.status
