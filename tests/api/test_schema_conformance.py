"""Schema conformance: schemathesis calls every operation of the live server's OpenAPI schema.

A real HTTP server (pytest-django's ``live_server``) runs on the test database, seeded with a
request in every state, active, revoked and expired grants, a key ring with secrets and a service
token. Every operation the schema lists is called anonymously and as each kind of caller, with
schema-valid and schema-violating input; ids in paths are drawn from what the caller's own list
operation for that collection returns, so calls reach real objects as well as missing ones. Any
5xx, undocumented status code, undocumented content type, or response body or header that does not
match the schema fails the test. docs/TESTING.md says how to run it alone and how to tune it.

Generation is derandomized (Hypothesis derives its seed from the test, not the clock) and the
example database is off, so a run repeats exactly on the same code and data.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from approvals import expiry
from approvals import services as approvals_services
from approvals.models import AccessRequest, Grant
from jitaccess import clock
from jitaccess.accounts.models import ServiceTokenScope
from jitaccess.accounts.services import service_token_create
from jitaccess.webhooks.events import WEBHOOK_EVENTS
from jitaccess.webhooks.services import endpoint_create
from keys.services import keyring_create
from tests.conftest import approve_through, submit
from tests.keys.conftest import make_secret

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Examples per operation, caller and kind of input (valid / invalid); CI's budget is ~2 minutes.
EXAMPLES = int(os.environ.get("JIT_CONFORMANCE_EXAMPLES", "5"))
# A caller refused (401/403) on this many calls in a row, from the first, cannot use the operation:
# its refusals are checked, and the examples go to callers who get further.
REFUSALS_ENOUGH = 2
# People who sign in for a token with their password (the cast's is "pw-<username>").
PEOPLE = ["requester", "legal1a", "legal2", "auditor", "secadmin"]
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture
def seeded(cast: dict[str, Any], entitlement: Any, security_group: Any) -> dict[str, Any]:
    """Requests in every state (pending at either stage, approved, denied, withdrawn, expired),
    grants active, revoked and expired, a key ring with secrets of both kinds, and a webhook with
    the deliveries of all of that (pending: no worker runs here)."""
    requester, legal1a, legal2 = cast["requester"], cast["legal1a"], cast["legal2"]
    endpoint_create(
        name="siem", url="https://receiver.example.com/hook", events=list(WEBHOOK_EVENTS), acting_user=cast["secadmin"]
    )
    submit(requester, entitlement)
    approve_through(submit(requester, entitlement, ticket="INC-2"), legal1a)
    approve_through(submit(requester, entitlement, ticket="INC-3"), legal1a, legal2)
    approve_through(submit(cast["admin2"], entitlement, ticket="INC-4"), legal1a, legal2)
    revoked = approve_through(submit(requester, entitlement, ticket="INC-5"), legal1a, legal2)
    approvals_services.grant_revoke(revoked.grant, acting_user=cast["secadmin"], reason="Done early")
    denied = submit(requester, entitlement, ticket="INC-6")
    approvals_services.request_decide(denied, approver=legal1a, decision="deny", comment="No ticket")
    approvals_services.request_withdraw(submit(requester, entitlement, ticket="INC-7"), acting_user=requester)
    stale = submit(requester, entitlement, ticket="INC-8")
    lapsed = approve_through(submit(requester, entitlement, ticket="INC-9"), legal1a, legal2)
    now = clock.now()
    AccessRequest.objects.filter(pk=stale.pk).update(pending_expires_at=now)
    Grant.objects.filter(pk=lapsed.grant.pk).update(starts_at=now - timedelta(hours=1), expires_at=now)
    assert expiry.expiry_sweep() == {"grants": 1, "requests": 1}

    keyring = keyring_create(name="ring-conformance", security_group=security_group, acting_user=None)
    make_secret(keyring, cast["secadmin"], name="mail-1")
    make_secret(keyring, cast["secadmin"], name="generic-1", kind="generic", metadata={"note": "demo"})
    return {"cast": cast, "entitlement": entitlement}


class Callers:
    """Each kind of caller's headers: anonymous, a person of each role with a token from
    ``/api/v1/auth/token/``, a service account with a token of every scope, and the holder of a
    grant's credential. A caller answered 401 has lost its token (``DELETE /auth/token/current/``,
    a service token or the grant revoked during the run), so it is given a new one before the next
    operation."""

    def __init__(self, base_url: str, seeded: dict[str, Any]) -> None:
        self.base_url = base_url
        self.cast = seeded["cast"]
        self.entitlement = seeded["entitlement"]
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}
        for who in [*PEOPLE, "service-account", "grant-credential"]:
            self.renew(who)

    def renew(self, who: str) -> None:
        self.headers[who] = {"Authorization": f"Bearer {self._token(who)}"}

    def _token(self, who: str) -> str:
        if who == "service-account":
            token, _ = service_token_create(
                account=self.cast["svc"],
                name="schema conformance",
                scopes=list(ServiceTokenScope.values),
                days=1,
                acting_user=self.cast["secadmin"],
            )
            return token
        if who == "grant-credential":
            # A grant's one credential: a new grant each time, the last one may have been revoked.
            requester = self.cast["requester"]
            granted = approve_through(submit(requester, self.entitlement), self.cast["legal1a"], self.cast["legal2"])
            token, _ = approvals_services.grant_credential_mint(granted.grant, acting_user=requester)
            return token
        answer = requests.post(
            f"{self.base_url}/api/v1/auth/token/", json={"username": who, "password": f"pw-{who}"}, timeout=30
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["token"]


class KnownValues:
    """Real values to mix into generated calls, from what the caller sees in list operations.

    Path parameters: ``/grants/{id}/revoke/`` takes ids from ``GET /grants/``, and so does
    ``/audit/grants/{id}/timeline/``, there being no ``GET /audit/grants/``. Body fields named
    after a collection: ``entitlement`` takes the ``slug`` of ``/entitlements/{slug}/`` from
    ``GET /entitlements/``, ``keyring`` the ``name`` of ``/keyrings/{name}/``. Collections added to
    the API later are found the same way. Each list is read once per caller; the caller's own
    values come first, then those only others see (a caller refused the list, such as a grant's
    credential, still gets real ids)."""

    def __init__(self, base_url: str, schema: dict[str, Any]) -> None:
        self.base_url = base_url
        self.schema = schema
        paths = schema["paths"]
        self.listings = [path for path, item in paths.items() if "{" not in path and "get" in item]
        # "entitlements" -> ("/api/v1/entitlements/", "slug"), from "/api/v1/entitlements/{slug}/".
        self.collections = {}
        for path in paths:
            found = re.fullmatch(r"(.*/([a-z-]+)/)\{(\w+)\}/", path)
            if found and found.group(1) in self.listings:
                self.collections[found.group(2)] = (found.group(1), found.group(3))
        self.seen: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def for_body(self, operation: Any, who: str, headers: dict[str, str]) -> dict[str, list[Any]]:
        body = self.schema["paths"][operation.path][operation.method.lower()].get("requestBody", {})
        shape = body.get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in shape:
            shape = self.schema["components"]["schemas"][shape["$ref"].rsplit("/", 1)[-1]]
        found = {}
        for field in shape.get("properties", {}):
            if f"{field}s" in self.collections and headers:
                listing, key = self.collections[f"{field}s"]
                found[field] = self._values(listing, key, who, headers)
        return found

    def for_path(self, operation: Any, who: str, headers: dict[str, str]) -> dict[str, list[Any]]:
        found = {}
        for parameter in operation.path_parameters:
            name = parameter.name
            collection = operation.path.split("{" + name + "}")[0]
            last_segment = "/" + collection.rstrip("/").rsplit("/", 1)[-1] + "/"
            listing = min(
                (path for path in self.listings if path.endswith(last_segment)),
                key=lambda path: (path != collection, len(path)),
                default=None,
            )
            found[name] = self._values(listing, name, who, headers) if listing and headers else []
        return found

    def _values(self, listing: str, key: str, who: str, headers: dict[str, str]) -> list[Any]:
        own = self._items(listing, who, headers)
        others = [item for (seen_listing, _), items in self.seen.items() if seen_listing == listing for item in items]
        values = [item[key] for item in [*own, *others] if key in item]
        return list(dict.fromkeys(values))[:8]

    def _items(self, listing: str, who: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        if (listing, who) not in self.seen:
            answer = requests.get(self.base_url + listing, headers=headers, timeout=30)
            body = answer.json() if answer.ok else []
            items = body.get("results", []) if isinstance(body, dict) else body
            self.seen[listing, who] = [item for item in items if isinstance(item, dict)]
        return self.seen[listing, who]


class CallerRefused(Exception):
    """Ends a caller's examples early once it is clearly not allowed to use the operation."""


class Findings:
    """Distinct failures (one per operation and kind), with who met them and how to reproduce."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, ...], str] = {}
        self.seen_by: dict[tuple[str, ...], list[str]] = {}

    def add(self, operation: str, who: str, exc: BaseException) -> None:
        parts = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
        for part in parts:
            key = (operation, getattr(part, "code", type(part).__name__), str(getattr(part, "_unique_key", part)))
            self.first.setdefault(key, f"{operation} as {who}:\n{str(exc)[:3000]}")
            self.seen_by.setdefault(key, []).append(who)

    def report(self) -> str:
        return "\n\n".join(
            f"[{key[1]}] also as: {', '.join(self.seen_by[key][1:]) or '-'}\n{text}" for key, text in self.first.items()
        )


def exercise(operation: Any, mode: Any, known: dict[str, dict[str, list]], call: Callable) -> None:
    """Up to EXAMPLES generated calls of one operation by one caller, known values mixed in."""

    def mixed(values: dict[str, list]) -> Any:
        return st.fixed_dictionaries({name: st.sampled_from([None, *found]) for name, found in values.items() if found})

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode), path=mixed(known["path"]), body=mixed(known["body"]))
    def run(case: Any, path: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in path.items():
            if value is not None:
                case.path_parameters = {**case.path_parameters, name: value}
        if isinstance(case.body, dict):
            for name, value in body.items():
                if value is not None:
                    case.body = {**case.body, name: value}
        call(case)

    run()


@pytest.mark.postgres
def test_every_operation_answers_as_the_schema_says(live_server: Any, seeded: dict[str, Any]) -> None:
    base_url = live_server.url
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/schema/")
    paths = schema.raw_schema["paths"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(1 for item in paths.values() for method in item if method in METHODS)

    findings = Findings()
    statuses: dict[str, Counter] = {operation.label: Counter() for operation in operations}
    callers = Callers(base_url, seeded)
    known_values = KnownValues(base_url, schema.raw_schema)
    started = time.monotonic()
    for operation in operations:
        for who, headers in list(callers.headers.items()):
            known = {
                "path": known_values.for_path(operation, who, headers),
                "body": known_values.for_body(operation, who, headers),
            }
            answered: list[int] = []
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

                def call(case: Any, headers: dict[str, str] = headers, answered: list[int] = answered) -> None:
                    response = case.call(base_url=base_url, headers=headers)
                    answered.append(response.status_code)
                    statuses[operation.label][response.status_code] += 1
                    case.validate_response(response, checks=CHECKS, headers=headers)
                    if len(answered) >= REFUSALS_ENOUGH and set(answered) <= {401, 403}:
                        raise CallerRefused

                try:
                    exercise(operation, mode, known, call)
                except CallerRefused:
                    break  # invalid input would be refused the same way
                except (Exception, FailureGroup) as exc:  # noqa: BLE001 - collected, then reported together
                    findings.add(operation.label, f"{who} ({mode.value})", exc)
            if headers and 401 in answered:
                callers.renew(who)
    elapsed = time.monotonic() - started

    calls = sum(sum(counter.values()) for counter in statuses.values())
    summary = "\n".join(f"{label}: {dict(sorted(counter.items()))}" for label, counter in statuses.items())
    print(f"\nschema conformance: {len(operations)} operations, {calls} calls, {elapsed:.0f} s\n{summary}")
    assert not findings.first, findings.report()
    # Every operation was called, and every read reached a real object for some caller.
    assert all(statuses[operation.label] for operation in operations)
    unread = [label for label, counter in statuses.items() if label.startswith("GET ") and not counter[200]]
    assert not unread, f"never answered 200: {unread}"
