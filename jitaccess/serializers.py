from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a client cannot believe it set ``state``,
    ``expires_at`` or ``approver`` when the server ignored them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["This field is not accepted."] for name in unknown})
        return super().to_internal_value(data)


SLUG = re.compile(r"[-a-zA-Z0-9_]{1,100}")


# The slug is a string in the schema; the model it names depends on the caller, so none is derived.
@extend_schema_field(OpenApiTypes.STR)
class VisibleSlugField(serializers.SlugRelatedField):
    """An object named by its slug, looked up only among those the caller may see, so the answer
    for an unknown slug and for one hidden from the caller is the same 400."""

    def __init__(self, *, visible_to: Callable[[Any], Any], slug_field: str = "slug", **kwargs: Any) -> None:
        self._visible_to = visible_to
        super().__init__(slug_field=slug_field, **kwargs)

    def get_queryset(self) -> Any:
        return self._visible_to(self.context["request"].user)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or not SLUG.fullmatch(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:100])
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField would quietly turn 123 or true into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
