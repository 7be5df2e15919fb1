"""Rate limits on the API actions worth flooding: deciding (approve / deny) and revealing.

A view names its limited actions in ``throttled_actions`` (action -> rate scope); the rates are
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``, from the environment (``JIT_*_THROTTLE``). Counts live
in the default cache, which is Redis whenever ``REDIS_URL`` is set, so all web hosts and worker
processes count together.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import Throttled
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

# What a refusal says was too frequent, by scope.
_WHAT = {"decide": "approvals and denials", "reveal": "reveals"}
_PERIOD_WORD = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


def scope_rate(scope: str) -> str:
    # Read on every call rather than once at import (as DRF's throttles do), so a changed setting
    # (a test's override) takes effect.
    return api_settings.DEFAULT_THROTTLE_RATES[scope]


class PerCallerActionThrottle(SimpleRateThrottle):
    """Counts the calls of one caller (person or service account) to one view's limited actions.

    A grant credential counts against its grantee: minting credentials cannot multiply the rate.
    Only authenticated callers reach a throttle (DRF checks permissions first).
    """

    def __init__(self) -> None:
        # The scope depends on the view's action; it is settled in allow_request.
        self.scope = ""

    def allow_request(self, request: Any, view: Any) -> bool:
        scope = getattr(view, "throttled_actions", {}).get(getattr(view, "action", None))
        if scope is None:
            return True
        self.scope = scope
        self.rate = scope_rate(scope)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = request.user
        ident = f"user-{user.pk}" if user and user.is_authenticated else f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def throttled_refusal(scope: str, wait: float | None) -> Throttled:
    """The 429 for ``scope``: what was too frequent, the limit, and (with Retry-After) when to retry."""
    count, _, period = scope_rate(scope).partition("/")
    word = _PERIOD_WORD.get(period[:1], period)
    return Throttled(
        wait,
        detail=f"Too many {_WHAT.get(scope, 'requests')}: the limit is {count} per {word}.",
    )


class ExplainedThrottling:
    """A view mixin: a throttled action is refused with a message naming the limit."""

    throttle_classes = [PerCallerActionThrottle]
    throttled_actions: dict[str, str] = {}

    def throttled(self, request: Any, wait: float | None) -> None:
        scope = self.throttled_actions.get(getattr(self, "action", None) or "")
        raise throttled_refusal(scope, wait) if scope else Throttled(wait)
