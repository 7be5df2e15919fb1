"""Invariant 14 below the ORM: the database itself refuses to change audit rows, and the
documented application role (docs/AUDIT.md) can only insert and read them."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.models import AuditEvent
from jitaccess.audit.services import audit_record
from jitaccess.audit.verification import verify_audit

pytestmark = [pytest.mark.postgres]


def run_sql(sql: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


@pytest.fixture
def trail(db):
    for i in range(3):
        audit_record("test.event", target_id=i)
    checkpoint_write()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'forged' WHERE seq = 2",
        "DELETE FROM audit_auditevent WHERE seq = 3",
        "UPDATE audit_auditcheckpoint SET head_hash = repeat('0', 64)",
        "DELETE FROM audit_auditcheckpoint",
    ],
)
def test_the_database_refuses_to_change_audit_rows(trail, sql):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        run_sql(sql)
    assert verify_audit().ok


def test_the_application_role_may_insert_and_read_but_not_change(trail):
    """The grant docs/AUDIT.md prescribes, applied to a throwaway role inside this transaction."""
    role = f"jit_app_{uuid.uuid4().hex[:8]}"
    run_sql(f"CREATE ROLE {role} NOLOGIN")
    run_sql(f"GRANT USAGE ON SCHEMA public TO {role}")
    run_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    run_sql(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent, audit_auditcheckpoint FROM {role}")
    run_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    run_sql(f"SET LOCAL ROLE {role}")
    try:
        audit_record("test.event", target_id="as the app role")  # insert and read the head: allowed
        assert AuditEvent.objects.count() == 4
        for sql in [
            "UPDATE audit_auditevent SET action = 'forged' WHERE seq = 2",
            "DELETE FROM audit_auditevent WHERE seq = 2",
            "TRUNCATE audit_auditevent",
            "TRUNCATE audit_auditcheckpoint",
        ]:
            with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
                run_sql(sql)
    finally:
        run_sql("RESET ROLE")
    assert verify_audit().ok
