"""Reveal is gated by access and audited on every attempt (invariants 6, 8, 9, 12)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import DatabaseError

from approvals import services as approval_services
from approvals.models import Grant, GrantState, SecurityGroup
from jitaccess import clock
from jitaccess.audit.models import AuditEvent, Outcome
from jitaccess.errors import Conflict, InvalidInput, NotAllowed, NotFound
from keys import services
from keys.models import Secret
from keys.reveal import secret_reveal
from tests.keys.conftest import make_secret


def reveal(secret_id: int, user: Any, **kwargs: Any) -> Any:
    return secret_reveal(secret_id, acting_user=user, reason=kwargs.pop("reason", "INC-1001 mailbox sync"), **kwargs)


def only_event() -> AuditEvent:
    events = list(AuditEvent.objects.filter(action__startswith="secret.reveal"))
    assert len(events) == 1, [e.action for e in events]
    return events[0]


def test_it_reveals_to_a_standing_service_account_and_audits_it(cast, secret):
    revealed = reveal(secret.pk, cast["svc"])

    assert (revealed.value, revealed.key_version, revealed.grant_id, revealed.via) == (
        "s3cret-value",
        1,
        None,
        "standing",
    )
    event = only_event()
    assert (event.action, event.outcome, event.actor_id, event.target_id) == (
        "secret.revealed",
        Outcome.SUCCESS,
        cast["svc"].pk,
        str(secret.pk),
    )
    assert event.data["reason"] == "INC-1001 mailbox sync"
    assert "s3cret-value" not in str(event.data)


def test_it_reveals_to_the_holder_of_an_active_grant_and_links_the_grant(cast, secret, granted):
    grant = Grant.objects.get(request=granted)

    revealed = reveal(secret.pk, cast["requester"])

    assert (revealed.value, revealed.grant_id, revealed.via) == ("s3cret-value", grant.pk, "grant")
    assert only_event().grant_id == grant.pk


@pytest.mark.parametrize("who", ["requester", "admin2", "legal1a", "auditor", "secadmin", "outsider"])
def test_it_refuses_everyone_else_and_audits_the_refusal(cast, secret, pending, who):
    with pytest.raises(NotAllowed) as exc:
        reveal(secret.pk, cast[who])

    assert exc.value.code == "no_access"
    event = only_event()
    assert (event.action, event.outcome, event.actor_id) == ("secret.reveal_denied", Outcome.DENIED, cast[who].pk)
    assert event.data["refusal"] == "no_access"


def test_it_refuses_after_the_grant_is_revoked(cast, secret, granted):
    grant = Grant.objects.get(request=granted)
    approval_services.grant_revoke(grant, acting_user=cast["secadmin"], reason="done")

    with pytest.raises(NotAllowed):
        reveal(secret.pk, cast["requester"])


def test_it_refuses_one_second_after_expires_at_with_no_worker_running(cast, secret, granted):
    grant = Grant.objects.get(request=granted)
    expires_at = clock.now() + timedelta(seconds=1)
    Grant.objects.filter(pk=grant.pk).update(expires_at=expires_at)
    assert reveal(secret.pk, cast["requester"]).value == "s3cret-value"

    time.sleep(max(0.0, (expires_at - clock.now()).total_seconds()) + 1.0)

    with pytest.raises(NotAllowed):
        reveal(secret.pk, cast["requester"])
    assert Grant.objects.get(pk=grant.pk).state == GrantState.ACTIVE  # nothing tidied up: the check alone refused


def test_it_refuses_a_disabled_service_account(cast, secret):
    cast["svc"].is_active = False
    cast["svc"].save()

    with pytest.raises(NotAllowed):
        reveal(secret.pk, cast["svc"])


def test_a_grant_credential_opens_only_its_own_grants_group(cast, secret, granted, keyring):
    grant = Grant.objects.get(request=granted)
    other_group = SecurityGroup.objects.create(name="dkm-other")
    other_ring = services.keyring_create(name="ring-other", security_group=other_group, acting_user=None)
    foreign = make_secret(other_ring, cast["secadmin"], name="foreign", value="not for this grant")

    assert reveal(secret.pk, cast["requester"], credential_grant_id=grant.pk).grant_id == grant.pk
    with pytest.raises(NotAllowed):
        reveal(foreign.pk, cast["requester"], credential_grant_id=grant.pk)
    # A standing service account's own access does not widen a credential either.
    with pytest.raises(NotAllowed):
        reveal(secret.pk, cast["svc"], credential_grant_id=grant.pk + 1000)


def test_swapped_ciphertexts_make_both_reveals_fail_and_be_audited(cast, keyring):
    first = make_secret(keyring, cast["secadmin"], name="first", value="first value")
    second = make_secret(keyring, cast["secadmin"], name="second", value="second value")
    one, two = (Secret.objects.get(pk=s.pk) for s in (first, second))
    Secret.objects.filter(pk=one.pk).update(envelope=bytes(two.envelope))
    Secret.objects.filter(pk=two.pk).update(envelope=bytes(one.envelope))

    for s in (first, second):
        with pytest.raises(Conflict) as exc:
            reveal(s.pk, cast["svc"])
        assert exc.value.code == "secret_unreadable"

    failures = AuditEvent.objects.filter(action="secret.reveal_failed").order_by("seq")
    assert [(e.target_id, e.outcome, e.data["error"]) for e in failures] == [
        (str(first.pk), Outcome.FAILED, "tampered"),
        (str(second.pk), Outcome.FAILED, "tampered"),
    ]
    assert not AuditEvent.objects.filter(action="secret.revealed").exists()


@pytest.mark.parametrize("cut", [0, 5, 80, 96])
def test_a_truncated_envelope_is_refused_and_audited_not_a_server_error(cast, secret, cut):
    Secret.objects.filter(pk=secret.pk).update(envelope=bytes(secret.envelope)[:cut])

    with pytest.raises(Conflict):
        reveal(secret.pk, cast["svc"])

    assert only_event().data["error"] == "tampered"


def test_it_audits_an_unknown_secret_and_a_missing_reason(cast, secret):
    with pytest.raises(NotFound):
        reveal(999999, cast["svc"])
    with pytest.raises(InvalidInput) as exc:
        reveal(secret.pk, cast["svc"], reason="   ")

    assert exc.value.field == "reason"
    refusals = AuditEvent.objects.filter(action="secret.reveal_denied").order_by("seq")
    assert [(e.target_id, e.data["refusal"]) for e in refusals] == [
        ("999999", "not_found"),
        (str(secret.pk), "invalid_reason"),
    ]


def test_it_reveals_nothing_when_the_audit_event_cannot_be_written(cast, secret):
    def failing(action: str, **kwargs: Any) -> None:
        if action == "secret.revealed":
            raise DatabaseError("audit table unavailable")

    with mock.patch("keys.reveal.audit_record", side_effect=failing), pytest.raises(DatabaseError):
        reveal(secret.pk, cast["svc"])

    assert not AuditEvent.objects.filter(action="secret.revealed").exists()


@pytest.mark.parametrize("reason", ["a\x00b", "a\ud800b"])
def test_a_reason_the_database_could_not_store_is_refused_and_still_audited(cast, secret, reason):
    with pytest.raises(InvalidInput) as exc:
        reveal(secret.pk, cast["outsider"], reason=reason)

    assert exc.value.field == "reason"
    event = only_event()
    assert (event.action, event.data["refusal"]) == ("secret.reveal_denied", "invalid_reason")
    assert "\x00" not in event.data["reason"]
