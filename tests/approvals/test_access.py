"""Layer 1 of expiry and the one question the keys app asks (invariants 6 and 8's basis)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from approvals import selectors, services
from approvals.models import Grant, GrantState
from jitaccess import clock
from jitaccess.errors import Conflict, NotAllowed


def test_a_grantee_has_access_while_the_grant_runs(cast, granted, security_group):
    assert selectors.has_access(cast["requester"], security_group)
    assert selectors.has_access(cast["requester"], "dkm-test")
    assert not selectors.has_access(cast["admin2"], security_group)
    assert not selectors.has_access(cast["legal2"], security_group)


def test_a_grant_is_refused_at_expires_at_with_no_worker(cast, granted, security_group):
    grant = granted.grant
    assert selectors.has_access(cast["requester"], security_group, at=grant.expires_at - timedelta(microseconds=1))
    assert not selectors.has_access(cast["requester"], security_group, at=grant.expires_at)
    # Move the end into the past without any task running: the state still says active ...
    Grant.objects.filter(pk=grant.pk).update(expires_at=clock.now())
    grant.refresh_from_db()
    assert grant.state == GrantState.ACTIVE
    # ... and the check on use refuses it anyway.
    assert not selectors.has_access(cast["requester"], security_group)
    assert selectors.grant_effective_state(grant, at=clock.now()) == GrantState.EXPIRED


def test_a_revoked_grant_is_refused_at_once(cast, granted, security_group):
    services.grant_revoke(granted.grant, acting_user=cast["requester"], reason="done early")
    assert not selectors.has_access(cast["requester"], security_group)


def test_a_service_account_has_standing_access(cast, entitlement, security_group):
    assert selectors.has_access(cast["svc"], security_group)
    cast["svc"].is_service_account = False
    cast["svc"].save()
    # Membership alone is not enough if the account is no longer a service account.
    assert not selectors.has_access(cast["svc"], security_group)


def test_an_inactive_user_has_no_access(cast, granted, security_group):
    cast["requester"].is_active = False
    cast["requester"].save()
    assert not selectors.has_access(cast["requester"], security_group)


def test_revocation_is_limited_to_the_grantee_and_security_admins(cast, granted):
    with pytest.raises(NotAllowed):
        services.grant_revoke(granted.grant, acting_user=cast["admin2"])
    with pytest.raises(NotAllowed):
        services.grant_revoke(granted.grant, acting_user=cast["auditor"])
    grant = services.grant_revoke(granted.grant, acting_user=cast["secadmin"], reason="incident closed")
    assert grant.state == GrantState.REVOKED
    assert grant.ended_by == cast["secadmin"]
    assert grant.end_reason == "incident closed"


def test_an_overdue_grant_cannot_be_revoked_but_is_expired_instead(cast, granted):
    Grant.objects.filter(pk=granted.grant.pk).update(expires_at=clock.now())
    with pytest.raises(Conflict):
        services.grant_revoke(granted.grant, acting_user=cast["requester"])
    granted.grant.refresh_from_db()
    assert granted.grant.state == GrantState.EXPIRED


def test_the_credential_is_minted_once_by_the_grantee(cast, granted):
    with pytest.raises(NotAllowed):
        services.grant_credential_mint(granted.grant, acting_user=cast["secadmin"])
    token, credential = services.grant_credential_mint(granted.grant, acting_user=cast["requester"])
    assert token.startswith("jitg_")
    assert credential.expires_at == granted.grant.expires_at
    assert token not in credential.token_hash
    with pytest.raises(Conflict):
        services.grant_credential_mint(granted.grant, acting_user=cast["requester"])


def test_no_credential_for_an_overdue_grant(cast, granted):
    Grant.objects.filter(pk=granted.grant.pk).update(expires_at=clock.now())
    with pytest.raises(Conflict):
        services.grant_credential_mint(granted.grant, acting_user=cast["requester"])
