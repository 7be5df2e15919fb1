"""Reads on the hot path of every API call, kept cheap in CPU.

On these paths the ORM's work building SQL costs more than the database's answering it, so the
few lookups that run on every call avoid what they do not need.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def unique_or_none(queryset: QuerySet[M]) -> M | None:
    """The row of a query that can match at most one (filtered on a unique column), or None.

    ``.first()`` would add an ``ORDER BY`` that can change nothing here and costs a noticeable part
    of a millisecond of CPU to build.
    """
    return next(iter(queryset.order_by()[:1]), None)
