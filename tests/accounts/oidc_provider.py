"""A local OpenID Connect provider for the single sign-on tests: an http.server thread on
127.0.0.1 with an authorization endpoint that redirects straight back with a code, a token
endpoint that returns an RS256-signed ID token, a JWKS and a userinfo endpoint. No internet.

The test says who signs in next (``person``) and how the provider misbehaves, if at all.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from django.urls import clear_url_caches

from jitaccess.accounts.oidc_backend import OIDC_BACKEND

CLIENT_ID = "jitaccess-test"
CLIENT_SECRET = "test-client-secret-not-real"
KID = "test-key-1"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeProvider:
    """What the provider does on the next sign-in, and what it was asked."""

    person: dict[str, Any] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    # Misbehaviour: sign with a key the JWKS does not publish, change the nonce or audience,
    # report an earlier sign-in than now (auth_time), answer with an error.
    sign_with: rsa.RSAPrivateKey | None = None
    nonce_override: str | None = None
    audience: str = CLIENT_ID
    auth_time_offset: float = 0
    error: str | None = None
    userinfo_sub: str | None = None
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _access: dict[str, dict[str, Any]] = field(default_factory=dict)
    base: str = ""

    @property
    def issuer(self) -> str:
        return self.base

    def settings(self) -> dict[str, Any]:
        """The Django settings that point the app at this provider."""
        return {
            "JIT_OIDC_ENABLED": True,
            "JIT_OIDC_PROVIDER_NAME": "Test IdP",
            "JIT_OIDC_ISSUER": self.issuer,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.base}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.base}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.base}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.base}/jwks",
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_RP_SIGN_ALGO": "RS256",
            "OIDC_RP_SCOPES": "openid email profile",
            "JIT_OIDC_USERNAME_CLAIM": "preferred_username",
            "JIT_OIDC_GROUPS_CLAIM": "groups",
            "JIT_OIDC_GROUP_MAP": [],
            "JIT_OIDC_CREATE_USERS": True,
            "JIT_OIDC_LINK_EXISTING": False,
            "JIT_OIDC_TRUST_IDP_MFA": False,
            "JIT_OIDC_MFA_AMR": ["mfa"],
            "OIDC_TIMEOUT": 5,
            "OIDC_USE_NONCE": True,
            "OIDC_USE_PKCE": True,
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def authorize(self, query: dict[str, str]) -> str:
        self.authorize_requests.append(query)
        if self.error:
            return f"{query['redirect_uri']}?{urlencode({'error': self.error, 'state': query['state']})}"
        code = secrets.token_urlsafe(16)
        self._codes[code] = {"query": query, "person": dict(self.person), "auth_time": time.time()}
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 400, {"error": "invalid_grant"}
        query = grant["query"]
        if form.get("redirect_uri") != query["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != query.get("code_challenge"):
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        person = grant["person"]
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": person["sub"],
            "iat": now,
            "exp": now + 300,
            "auth_time": int(grant["auth_time"] + self.auth_time_offset),
            "nonce": self.nonce_override if self.nonce_override is not None else query.get("nonce"),
            **{k: v for k, v in person.items() if k in {"amr", "groups"}},
        }
        id_token = jwt.encode(claims, self.sign_with or self.key, algorithm="RS256", headers={"kid": KID})
        access = secrets.token_urlsafe(16)
        self._access[access] = person
        return 200, {"access_token": access, "id_token": id_token, "token_type": "Bearer", "expires_in": 300}

    def userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        person = self._access.get(authorization.removeprefix("Bearer "))
        if person is None:
            return 401, {"error": "invalid_token"}
        answer = {k: v for k, v in person.items() if k != "amr"}
        return 200, {**answer, "sub": self.userinfo_sub} if self.userinfo_sub else answer


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.send_response(302)
                self.send_header("Location", provider.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif url.path == "/jwks":
                self._json(200, provider.jwks())
            elif url.path == "/userinfo":
                self._json(*provider.userinfo(self.headers.get("Authorization", "")))
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path == "/token":
                self._json(*provider.token(form))
            else:
                self._json(404, {"error": "not_found"})

    return Handler


def start_provider() -> tuple[FakeProvider, ThreadingHTTPServer]:
    provider = FakeProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return provider, server


def _reload_urls() -> None:
    import jitaccess.urls

    importlib.reload(jitaccess.urls)
    clear_url_caches()


def provider_enabled(settings: Any) -> Iterator[FakeProvider]:
    """A provider running, and the app configured for it (its /oidc/ URLs mounted), for one test;
    single sign-on is off again afterwards. ``settings`` is pytest-django's fixture."""
    provider, server = start_provider()
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, OIDC_BACKEND]
    _reload_urls()
    try:
        yield provider
    finally:
        server.shutdown()
        settings.JIT_OIDC_ENABLED = False
        _reload_urls()
