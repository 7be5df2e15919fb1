from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from approvals.models import GrantState, RequestState
from approvals.selectors import grants_in_state, requests_in_state
from jitaccess import clock


class AccessRequestFilter(django_filters.FilterSet):
    # Filter by the state a reader sees: a pending request past its TTL counts as expired.
    state = django_filters.ChoiceFilter(
        choices=RequestState.choices, method=lambda qs, name, value: requests_in_state(qs, value, at=clock.now())
    )
    entitlement = django_filters.CharFilter(field_name="entitlement__slug")
    requester = django_filters.CharFilter(field_name="requester__username")
    # Validated here; the view swaps the base queryset for the caller's inbox.
    awaiting = django_filters.ChoiceFilter(choices=[("me", "me")], method="keep")

    def keep(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset


class GrantFilter(django_filters.FilterSet):
    # An active grant past expires_at counts as expired.
    state = django_filters.ChoiceFilter(
        choices=GrantState.choices, method=lambda qs, name, value: grants_in_state(qs, value, at=clock.now())
    )
