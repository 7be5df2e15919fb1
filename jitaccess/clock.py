"""One clock for every time-based decision.

On PostgreSQL the database's ``clock_timestamp()`` is the time source, so web and worker hosts
with drifting clocks still agree on when a grant ends, and a long transaction does not see a
stale "now" (PostgreSQL's ``now()`` is the transaction start). Other databases use the host clock.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.utils import timezone


def now() -> datetime:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()
