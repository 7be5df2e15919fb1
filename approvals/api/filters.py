from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet

from approvals.models import GrantState, RequestState
from jitaccess import clock


class AccessRequestFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=RequestState.choices, method="filter_state")
    entitlement = django_filters.CharFilter(field_name="entitlement__slug")
    requester = django_filters.CharFilter(field_name="requester__username")
    # Validated here; the view swaps the base queryset for the caller's inbox.
    awaiting = django_filters.ChoiceFilter(choices=[("me", "me")], method="keep")

    def keep(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The state a reader sees: a pending request past its TTL counts as expired.
        now = clock.now()
        if value == RequestState.PENDING:
            return queryset.filter(state=RequestState.PENDING, pending_expires_at__gt=now)
        if value == RequestState.EXPIRED:
            return queryset.filter(
                Q(state=RequestState.EXPIRED) | Q(state=RequestState.PENDING, pending_expires_at__lte=now)
            )
        return queryset.filter(state=value)


class GrantFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=GrantState.choices, method="filter_state")

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # Filter by the state a reader sees: an active grant past expires_at counts as expired.
        now = clock.now()
        if value == GrantState.ACTIVE:
            return queryset.filter(state=GrantState.ACTIVE, expires_at__gt=now)
        if value == GrantState.EXPIRED:
            return queryset.filter(Q(state=GrantState.EXPIRED) | Q(state=GrantState.ACTIVE, expires_at__lte=now))
        return queryset.filter(state=value)
