"""Log records are JSON lines outside DEBUG, carrying the correlation id of their request."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import Client

from jitaccess.audit.context import audit_context
from jitaccess.logs import CorrelationIdFilter, JsonFormatter


@pytest.fixture
def captured():
    """The root logger's output through the configured formatter and filter, as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_production_logs_json_through_the_correlation_filter():
    assert settings.JIT_LOG_FORMAT == "json"
    console = settings.LOGGING["handlers"]["console"]
    assert console["formatter"] == "json"
    assert console["filters"] == ["correlation_id"]


def test_a_log_line_from_inside_a_request_carries_its_correlation_id(db, captured):
    response = Client().get("/no-such-page/", headers={"X-Request-ID": "req-0123456789"})
    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-0123456789"
    [entry] = [entry for entry in lines(captured) if entry["logger"] == "django.request"]
    assert entry["message"] == "Not Found: /no-such-page/"
    assert entry["level"] == "WARNING"
    assert entry["correlation_id"] == "req-0123456789"
    assert entry["time"].endswith("+00:00")
    assert entry["status_code"] == 404


def test_each_line_is_one_json_object_with_extras_and_the_exception(captured):
    log = logging.getLogger("jitaccess.test")
    with audit_context(correlation_id="task-abcdef12"):
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            log.exception("it failed for %s", "grant 7", extra={"grant": 7})
    log.warning("outside any request")
    first, second = lines(captured)
    assert {key: first[key] for key in ("level", "logger", "message", "correlation_id", "grant")} == {
        "level": "ERROR",
        "logger": "jitaccess.test",
        "message": "it failed for grant 7",
        "correlation_id": "task-abcdef12",
        "grant": 7,
    }
    assert "ValueError: boom" in first["exception"]
    assert second["correlation_id"] == "-"
    assert captured.getvalue().count("\n") == 2  # a multi-line traceback stays inside one line
