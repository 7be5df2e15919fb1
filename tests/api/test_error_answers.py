"""Error answers under /api/: always the API's JSON shape, and documented in the schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from jitaccess import api_errors

ERROR = {"$ref": "#/components/schemas/Error"}


def test_an_api_path_matching_no_route_answers_the_json_404(client: Any) -> None:
    response = client.get("/api/v1/grants/not/a/route/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.django_db
def test_a_page_matching_no_route_is_still_the_html_page(client: Any) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_crash_under_api_answers_the_json_500() -> None:
    response = api_errors.server_error(RequestFactory().get("/api/v1/requests/"))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.content == b'{"detail": "A server error occurred.", "code": "error"}'


@pytest.fixture
def operations(client: Any) -> dict[str, Any]:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return {
        f"{method.upper()} {path}": operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


@pytest.mark.django_db
def test_the_schema_documents_the_error_answers_of_each_operation(operations: dict[str, Any]) -> None:
    def errors(label: str) -> dict[str, Any]:
        responses = operations[label]["responses"]
        return {code: response for code, response in responses.items() if code.startswith("4")}

    # Input, a caller, an object in the path, a conflict with its state, a throttle.
    approve = errors("POST /api/v1/requests/{id}/approve/")
    assert sorted(approve) == ["400", "401", "403", "404", "409", "429"]
    assert all(response["content"]["application/json"]["schema"] == ERROR for response in approve.values())
    assert "Retry-After" in approve["429"]["headers"]
    # No input, no path parameter, no throttle: only the caller can be wrong.
    assert sorted(errors("GET /api/v1/audit/verify/")) == ["401", "403"]
    # Open to anyone: no 401/403 of the generic kind, but the token endpoint's own, in the shape.
    token = errors("POST /api/v1/auth/token/")
    assert sorted(token) == ["400", "401", "403", "429"]
    assert token["401"]["content"]["application/json"]["schema"] == ERROR


@pytest.mark.django_db
def test_the_schema_says_strict_input_refuses_unknown_fields(client: Any) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]

    for name in ["AccessRequestCreateRequest", "DecisionInputRequest", "SecretCreateRequest", "TokenRequestRequest"]:
        assert components[name]["additionalProperties"] is False, name
