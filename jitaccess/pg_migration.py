"""Database-level guards (triggers) that exist only on PostgreSQL, as one migration operation."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def postgres_only(forward_sql: str, backward_sql: str) -> migrations.RunPython:
    """Run ``forward_sql`` on PostgreSQL and nothing elsewhere (the SQLite demo has no triggers)."""

    def run(sql: str) -> Any:
        def operation(apps: Any, schema_editor: Any) -> None:
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql)

        return operation

    return migrations.RunPython(run(forward_sql), run(backward_sql))
