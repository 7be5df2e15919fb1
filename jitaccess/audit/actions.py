"""Every action name the audit trail can hold, so filters can refuse a typo with a 400.

The apps own what they record; this list only names it. A test walks the code for
``audit_record("...")`` literals and fails when one is missing here.
"""

from __future__ import annotations

# Codes of refused decisions, recorded as ``decision.refused.<code>``.
DECISION_REFUSAL_CODES = (
    "not_pending",
    "request_expired",
    "self_approval",
    "already_decided",
    "not_in_stage_group",
    "stage_mismatch",
    "digest_invalid",
    "digest_mismatch",
)

KNOWN_ACTIONS: frozenset[str] = frozenset(
    {
        # sign-in and API tokens
        "auth.login",
        "auth.login_failed",
        "auth.logout",
        "auth.token_issued",
        "auth.token_revoked",
        "auth.locked_out",
        "auth.reauthenticated",
        "auth.reauth_failed",
        "auth.second_factor_enrolled",
        "auth.second_factor_removed",
        "auth.service_token_created",
        "auth.service_token_revoked",
        "auth.unlocked",
        "auth.second_factor_reset",
        # single sign-on (OpenID Connect)
        "auth.groups_synced",
        "auth.identity_linked",
        "auth.user_created",
        # the approval workflow
        "request.submitted",
        "request.submit_refused",
        "request.stage_opened",
        "request.approved",
        "request.denied",
        "request.withdrawn",
        "request.withdraw_refused",
        "request.expired",
        "decision.approved",
        "decision.denied",
        *(f"decision.refused.{code}" for code in DECISION_REFUSAL_CODES),
        # grants and their credentials
        "grant.issued",
        "grant.revoked",
        "grant.revoke_refused",
        "grant.expired",
        "credential.minted",
        "credential.mint_refused",
        "grant.http_request",
        "security_group.member_added",
        "security_group.member_removed",
        # keys and secrets
        "keyring.created",
        "keyring.policy_changed",
        "key.rotated",
        "key.rewrapped",
        "key.archived",
        "key.destroyed",
        "secret.created",
        "secret.updated",
        "secret.revealed",
        "secret.reveal_denied",
        "secret.reveal_failed",
        # webhooks for workflow events (docs/WEBHOOKS.md)
        "webhook.created",
        "webhook.updated",
        "webhook.secret_rotated",
        "webhook.deactivated",
        "webhook.redelivered",
        "webhook.delivery_failed",
        # configuration edited through the admin (django-auditlog holds the field diff)
        "config.changed",
        # the auditors' own reads that leave the system
        "audit.exported",
        "audit.evidence_exported",
        "audit.report_exported",
    }
)


def action_filter_problem(value: str) -> str | None:
    """Why ``value`` is not a usable action filter, or None.

    An exact name, or a prefix ending in ``.*`` (``decision.*``) that matches at least one name.
    """
    if value.endswith(".*"):
        prefix = value[:-1]
        if any(name.startswith(prefix) for name in KNOWN_ACTIONS):
            return None
        return f"No action starts with {prefix!r}."
    if value in KNOWN_ACTIONS:
        return None
    return f"Unknown action {value!r}."
