"""The webhook settings fail loudly at start-up, like every other setting."""

from __future__ import annotations

import pytest

from tests.test_settings import manage


@pytest.mark.parametrize(
    ("name", "value"),
    [("JIT_WEBHOOK_KEYRING", "not a ring"), ("JIT_WEBHOOK_MAX_ATTEMPTS", "0"), ("JIT_WEBHOOK_ALLOW_HTTP", "maybe")],
)
def test_a_bad_webhook_setting_stops_start_up_naming_it(tmp_path, name, value):
    result = manage("check", DJANGO_DEBUG="true", JIT_VAR_DIR=str(tmp_path), **{name: value})
    assert result.returncode != 0
    assert name in result.stderr
