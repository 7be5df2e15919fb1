"""The OpenID Connect relying party, on mozilla-django-oidc: the code exchange, the ID token's
checks and the userinfo call. Who the claims sign in as is oidc_services.py's question."""

from __future__ import annotations

from typing import Any

import jwt
import requests
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

OIDC_BACKEND = "jitaccess.accounts.oidc_backend.OIDCBackend"
# Clock difference allowed between the provider and this host, in seconds.
CLOCK_SKEW = 60


class OIDCRefused(Exception):
    """A sign-in through the provider that must not succeed; ``reason`` goes to the audit trail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class OIDCBackend(OIDCAuthenticationBackend):
    """Keeps OIDC sessions signed in (``get_user``) and talks to the provider for the callback.

    ``authenticate`` answers None to everyone: Django offers every backend the password sign-in's
    credentials, and a provider's code must only ever be redeemed by the callback
    (oidc_views.py), after it checked the state it started with.
    """

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        # mozilla-django-oidc skips the audience; a token the provider issued to another client
        # must not sign anyone in here, nor one from another issuer, nor one without an expiry.
        try:
            alg = jwt.get_unverified_header(payload).get("alg")
            if alg != self.OIDC_RP_SIGN_ALGO:
                raise SuspiciousOperation(f"ID token signed with {alg!r}, not {self.OIDC_RP_SIGN_ALGO}")
            return jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.JIT_OIDC_ISSUER,
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as problem:
            raise SuspiciousOperation(f"ID token refused: {problem}") from None

    def provider_claims(self, request: HttpRequest, *, code: str, nonce: str, code_verifier: str | None) -> dict:
        """Redeem ``code`` and return the person's claims: the verified ID token's over the
        userinfo endpoint's (the signed token wins where both speak)."""
        self.request = request
        payload = {
            "client_id": self.OIDC_RP_CLIENT_ID,
            "client_secret": self.OIDC_RP_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": request.build_absolute_uri(reverse("oidc_authentication_callback")),
        }
        if code_verifier:
            payload["code_verifier"] = code_verifier
        try:
            tokens = self.get_token(payload)
        except (requests.RequestException, ValueError) as problem:
            raise OIDCRefused("token_exchange", str(problem)[:200]) from None
        id_token, access_token = tokens.get("id_token"), tokens.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise OIDCRefused("token_exchange", "the token response lacks an ID or access token")
        try:
            claims = self.verify_token(id_token, nonce=nonce)
        except (SuspiciousOperation, jwt.PyJWTError, KeyError, ValueError, requests.RequestException) as problem:
            raise OIDCRefused("id_token", str(problem)[:200]) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise OIDCRefused("id_token", "several audiences, and this client is not the authorized party")
        if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
            raise OIDCRefused("id_token", "no usable sub claim")
        try:
            userinfo = self.get_userinfo(access_token, id_token, claims)
        except (requests.RequestException, ValueError, SuspiciousOperation) as problem:
            raise OIDCRefused("userinfo", str(problem)[:200]) from None
        if not isinstance(userinfo, dict) or userinfo.get("sub") != claims["sub"]:
            # OpenID Connect Core 5.3.2: a userinfo answer about someone else must not be used.
            raise OIDCRefused("userinfo", "the userinfo sub differs from the ID token's")
        return {**userinfo, **claims}


def provider_mfa_shown(claims: dict[str, Any]) -> bool:
    """Did the provider say it used several factors (``amr``), and is it trusted to say so?"""
    amr = claims.get("amr")
    if not settings.JIT_OIDC_TRUST_IDP_MFA or not isinstance(amr, list):
        return False
    return any(isinstance(value, str) and value in settings.JIT_OIDC_MFA_AMR for value in amr)
