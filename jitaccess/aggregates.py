"""Aggregates Django lacks, for reports computed by the database."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import Aggregate


class _PercentileOnSqlite:
    """``percentile_cont`` for SQLite (the embedded database), registered per connection."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.0

    def step(self, value: float | None, fraction: float) -> None:
        if value is not None:
            self.values.append(value)
            self.fraction = fraction

    def finalize(self) -> float | None:
        if not self.values:
            return None
        ordered = sorted(self.values)
        position = self.fraction * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Percentile(Aggregate):
    """The continuous percentile (``fraction`` from 0 to 1) of a number or a duration, as
    PostgreSQL's ``percentile_cont``: 0.5 is the median, interpolated between the two middle rows."""

    function = "percentile_cont"
    name = "Percentile"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        # A float we checked, written into the SQL as a literal: percentile_cont wants a constant.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        connection.ensure_connection()
        connection.connection.create_aggregate("jit_percentile", 2, _PercentileOnSqlite)
        return self.as_sql(compiler, connection, template="jit_percentile(%(expressions)s, %(fraction)s)")
