"""OpenAPI query parameters taken from the filter forms, so the contract lists exactly what the
forms validate."""

from __future__ import annotations

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from jitaccess.schema_errors import ErrorResponsesSchema


def _parameter_type(field: forms.Field) -> OpenApiTypes:
    if isinstance(field, forms.IntegerField):
        return OpenApiTypes.INT64
    if isinstance(field, forms.DateTimeField):
        return OpenApiTypes.DATETIME
    return OpenApiTypes.STR


def form_query_parameters(form_class: type[forms.Form]) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            name,
            _parameter_type(field),
            OpenApiParameter.QUERY,
            required=field.required,
            description=str(field.help_text),
            default=getattr(field, "default", None),
            enum=[value for value, _ in field.choices if value] if isinstance(field, forms.ChoiceField) else None,
        )
        for name, field in form_class.base_fields.items()
    ]


class FilterFormSchema(ErrorResponsesSchema):
    """Describes the view's ``filter_form`` fields as its query parameters."""

    def get_override_parameters(self) -> list[OpenApiParameter]:
        form = getattr(self.view, "filter_form", None)
        return [*super().get_override_parameters(), *(form_query_parameters(form) if form else [])]
