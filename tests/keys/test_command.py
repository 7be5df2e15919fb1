"""``manage.py keys``: the operator's rotate / rewrap / archive / destroy, each audited."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jitaccess.audit.models import AuditEvent
from keys.models import KeyState, KeyVersion


def run(*args: str) -> str:
    out = StringIO()
    call_command("keys", *args, stdout=out)
    return out.getvalue()


def test_it_walks_a_ring_through_rotation_rewrap_archive_and_destroy(keyring, secret):
    assert "version 2 is primary" in run("rotate", keyring.name)
    with pytest.raises(CommandError, match="this one is active"):
        run("destroy", keyring.name, "1", "--confirm", "1")  # not archived (and still referenced)
    assert "1 rewrapped to version 2" in run("rewrap", keyring.name)
    assert "archived [1]" in run("archive", keyring.name)
    with pytest.raises(CommandError, match="Type the version number"):
        run("destroy", keyring.name, "1", "--confirm", "2")
    assert "version 1 destroyed" in run("destroy", keyring.name, "1", "--confirm", "1")

    status = run("status")
    assert "v2    primary    1 secrets" in status and "v1    destroyed  0 secrets" in status
    assert KeyVersion.objects.get(keyring=keyring, version=1).state == KeyState.DESTROYED
    assert list(
        AuditEvent.objects.filter(action__startswith="key.").order_by("seq").values_list("action", flat=True)
    ) == ["key.rotated", "key.rewrapped", "key.archived", "key.destroyed"]


def test_it_names_an_unknown_ring_or_version(keyring):
    with pytest.raises(CommandError, match="no key ring named 'nope'"):
        run("rotate", "nope")
    with pytest.raises(CommandError, match="has no version 9"):
        run("destroy", keyring.name, "9", "--confirm", "9")
