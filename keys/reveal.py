"""Reveal: the only way a secret's value leaves the keys app (invariant 8).

Every attempt writes exactly one audit event, allowed or not. A success is audited before the
value is returned, in a committed transaction, so if the audit write fails nothing is revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from approvals.models import Grant, GrantState
from approvals.selectors import active_grant_for, is_standing_member
from jitaccess import clock
from jitaccess.audit.models import Outcome
from jitaccess.audit.services import audit_record
from jitaccess.errors import Conflict, InvalidInput, NotAllowed, NotFound, Unavailable
from jitaccess.lookups import unique_or_none
from keys import crypto
from keys.errors import KeyFailure, ProviderUnavailable
from keys.kek import kek_lookup
from keys.models import Secret
from keys.secret_rules import storable_text_problem
from keys.services import secret_context

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Revealed:
    value: str
    key_version: int
    grant_id: int | None
    via: str  # "standing" or "grant"


@dataclass
class _Attempt:
    """One reveal attempt: what is known so far, and the single audit event it ends with."""

    actor: Any
    target: Any
    grant_id: int | None
    data: dict[str, Any]

    def record(self, action: str, outcome: str, **extra: Any) -> None:
        with transaction.atomic():
            audit_record(
                action,
                actor=self.actor,
                target_type="secret",
                target_id=self.target,
                grant_id=self.grant_id,
                outcome=outcome,
                data={**self.data, **extra},
            )


def _grant_of_credential(credential_grant_id: int, security_group_id: int, *, now: Any) -> Grant | None:
    # Checked against the clock here too, not only at authentication (invariant 6).
    return Grant.objects.filter(
        pk=credential_grant_id,
        security_group_id=security_group_id,
        state=GrantState.ACTIVE,
        starts_at__lte=now,
        expires_at__gt=now,
    ).first()


def _storable(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "backslashreplace").decode()


def _secret_id(raw: int | str) -> int | None:
    """The id from the URL, or None when it cannot name a secret (the attempt is still audited)."""
    text = str(raw)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def secret_reveal_throttled(
    secret_id: int | str, *, acting_user: Any, reason: Any, credential_grant_id: int | None = None
) -> None:
    """Audit a reveal attempt refused by the rate limit, before anything is looked up.

    A refused attempt is still an attempt (invariant 8), and a burst of them is worth seeing.
    """
    reason = reason.strip() if isinstance(reason, str) else ""
    data: dict[str, Any] = {"reason": _storable(reason)[:MAX_REASON_CHARS]}
    if credential_grant_id is not None:
        data["credential_grant"] = credential_grant_id
    attempt = _Attempt(acting_user, _storable(str(secret_id))[:64], credential_grant_id, data)
    attempt.record("secret.reveal_denied", Outcome.DENIED, refusal="throttled")


def secret_reveal(
    secret_id: int | str,
    *,
    acting_user: Any,
    reason: Any,
    credential_grant_id: int | None = None,
    page_grant_id: int | None = None,
) -> Revealed:
    """Open the secret for a standing service member of its ring's group or an active grantee.

    ``page_grant_id``: the grant whose page the attempt came from (the holder's own, checked by the
    page). It opens nothing; it only names the grant on a refused attempt, so a reveal tried after the
    grant ended appears on that grant's timeline and in its evidence pack.

    ``credential_grant_id``: the caller authenticated with a grant credential, which opens only
    the secrets of that one grant; their other access does not count on that call.
    """
    reason = reason.strip() if isinstance(reason, str) else ""
    # What a caller sent is audited in a storable form (no NUL, no lone surrogates) and refused if
    # it was not already storable; the id of a probe is also kept short.
    shown_id = _storable(str(secret_id))[:64]
    attempt = _Attempt(acting_user, shown_id, credential_grant_id, {"reason": _storable(reason)[:MAX_REASON_CHARS]})
    if credential_grant_id is not None:
        attempt.data["credential_grant"] = credential_grant_id

    parsed_id = _secret_id(secret_id)
    secret = (
        unique_or_none(Secret.objects.select_related("keyring__security_group").filter(pk=parsed_id))
        if parsed_id is not None
        else None
    )
    if secret is None:
        attempt.record("secret.reveal_denied", Outcome.DENIED, refusal="not_found")
        raise NotFound("No such secret.")
    attempt.target = secret.pk
    if not reason or len(reason) > MAX_REASON_CHARS or storable_text_problem(reason):
        attempt.record("secret.reveal_denied", Outcome.DENIED, refusal="invalid_reason")
        raise InvalidInput(
            "reason",
            "Say why you need the value; it is audited."
            if not reason
            else storable_text_problem(reason) or f"At most {MAX_REASON_CHARS} characters.",
        )

    if secret.keyring.name == settings.JIT_WEBHOOK_KEYRING:
        # Webhook signing secrets are shown once, to the security admin who made them, and then
        # used only by the server: membership of the ring's group (which should have none) opens nothing.
        attempt.record("secret.reveal_denied", Outcome.DENIED, refusal="server_only")
        raise NotAllowed("This secret signs webhooks; only the server uses it.", code="server_only")

    group = secret.keyring.security_group
    grant: Grant | None = None
    if credential_grant_id is not None:
        grant = _grant_of_credential(credential_grant_id, group.pk, now=clock.now())
        via = "grant" if grant else ""
    elif is_standing_member(acting_user, group):
        via = "standing"
    else:
        grant = active_grant_for(acting_user, group)  # reads the clock itself
        via = "grant" if grant else ""
    attempt.grant_id = grant.pk if grant else (credential_grant_id or page_grant_id)
    attempt.data.update(keyring=secret.keyring.name, security_group=group.name, key_version=secret.key_version)

    if not via:
        attempt.record("secret.reveal_denied", Outcome.DENIED, refusal="no_access")
        raise NotAllowed(
            f"Revealing needs an active grant for {group.name} (or standing membership as a service account).",
            code="no_access",
        )

    context = secret_context(secret.keyring_id, secret.uuid, secret.value_version)
    try:
        plaintext = crypto.unseal(secret.envelope, kek_lookup(secret.keyring), context)
    except KeyFailure as exc:
        # Corrupt, moved or wrongly-keyed data is refused and audited, never returned as-is.
        attempt.record("secret.reveal_failed", Outcome.FAILED, via=via, error=exc.code)
        if isinstance(exc, ProviderUnavailable):
            raise Unavailable(
                "The key ring's root-key provider is unavailable; the secret cannot be opened now.",
                code="key_provider_unavailable",
            ) from None
        raise Conflict(
            f"The stored secret cannot be opened ({exc.code}); it was reported in the audit trail.",
            code="secret_unreadable",
        ) from None

    attempt.record("secret.revealed", Outcome.SUCCESS, via=via, value_version=secret.value_version)
    return Revealed(value=plaintext.decode(), key_version=secret.key_version, grant_id=attempt.grant_id, via=via)


def server_secret_value(secret: Secret) -> str:
    """The value of a secret that the server itself uses and hands to no one: a webhook endpoint's
    signing key, opened by the worker to sign each delivery.

    Not a reveal, so not audited per use (that would be one audit event per delivery); the
    secret's creation and every rotation are. Only jitaccess.webhooks calls this, for the secrets
    its endpoints point to. Raises KeyFailure (WrongKey, Tampered, ProviderUnavailable).
    """
    context = secret_context(secret.keyring_id, secret.uuid, secret.value_version)
    return crypto.unseal(secret.envelope, kek_lookup(secret.keyring), context).decode()
