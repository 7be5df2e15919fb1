"""The auditors' API over the trail: events, exports, verification, configuration changes and
reports. Members of ``auditors`` only, and GET only: auditors change nothing (invariant 14)."""

from __future__ import annotations

from typing import Any

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import APISettings
from rest_framework.views import APIView

from jitaccess.accounts.permissions import IsAuditor
from jitaccess.audit import exports, selectors
from jitaccess.audit.api.schema import FilterFormSchema
from jitaccess.audit.api.serializers import (
    AuditEventSerializer,
    ConfigChangeSerializer,
    ReportInfoSerializer,
    ReportSerializer,
    VerificationSerializer,
)
from jitaccess.audit.filters import ChangeFilterForm, EventExportForm, EventFilterForm, ReportForm
from jitaccess.audit.reports import REPORTS
from jitaccess.audit.verification import verify_audit
from jitaccess.pagination import IdCursorPagination

STREAMED_FILE = OpenApiResponse(OpenApiTypes.BINARY, description="A streamed attachment (Content-Disposition).")


class AcceptHeaderNegotiation(DefaultContentNegotiation):
    """Here ``?format=`` names a download's file format (jsonl, csv), not a renderer, so responses
    are negotiated by the Accept header alone."""

    settings = APISettings({"URL_FORMAT_OVERRIDE": None})


class AuditorOnly:
    """Auditors only, GET only. ``filter_form`` validates the query string (``valid_query``)
    and lists it in the OpenAPI schema."""

    permission_classes = [IsAuditor]
    # HEAD and OPTIONS are refused too: every path here is a plain read, and an export's audit
    # record must come from a request that actually receives the file.
    http_method_names = ["get"]
    content_negotiation_class = AcceptHeaderNegotiation
    filter_backends: list[type] = []
    filter_form: type[forms.Form] | None = None
    schema = FilterFormSchema()
    request: Request

    def valid_query(self) -> Any:
        """The bound, valid ``filter_form``; otherwise a 400 naming each bad parameter."""
        assert self.filter_form is not None
        form = self.filter_form(self.request.query_params)
        if not form.is_valid():
            raise ValidationError({field: list(errors) for field, errors in form.errors.items()})
        return form


class NewestEventFirst(IdCursorPagination):
    ordering = "-seq"


class OldestEventFirst(IdCursorPagination):
    ordering = "seq"


class AuditEventListView(AuditorOnly, generics.ListAPIView):
    serializer_class = AuditEventSerializer
    pagination_class = NewestEventFirst
    filter_form = EventFilterForm

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.events_matching(self.valid_query().filters())


class AuditExportView(AuditorOnly, APIView):
    filter_form = EventExportForm

    @extend_schema(
        responses={(200, "application/x-ndjson"): STREAMED_FILE, (200, "text/csv"): STREAMED_FILE},
        description="The matching events, oldest first, as JSON lines or CSV. Each export is itself audited "
        "(audit.exported) before the first byte is sent.",
    )
    def get(self, request: Request) -> Any:
        form = self.valid_query()
        file_format = form.cleaned_data["format"]
        rows = exports.events_export_open(form.filters(), file_format=file_format, acting_user=request.user)
        return exports.download_response(
            "audit-events", file_format, exports.EVENT_COLUMNS, (exports.event_export_record(row) for row in rows)
        )


class AuditVerifyView(AuditorOnly, APIView):
    @extend_schema(responses=VerificationSerializer)
    def get(self, request: Request) -> Response:
        return Response(verify_audit().as_dict())


class ConfigChangeListView(AuditorOnly, generics.ListAPIView):
    serializer_class = ConfigChangeSerializer
    filter_form = ChangeFilterForm

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.config_changes(self.valid_query().filters())


class ReportListView(AuditorOnly, APIView):
    @extend_schema(responses=ReportInfoSerializer(many=True))
    def get(self, request: Request) -> Response:
        reports = sorted(REPORTS.values(), key=lambda report: report.name)
        return Response(ReportInfoSerializer(reports, many=True).data)


class ReportView(AuditorOnly, APIView):
    filter_form = ReportForm

    @extend_schema(
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, enum=sorted(REPORTS))],
        responses={200: ReportSerializer, (200, "text/csv"): STREAMED_FILE},
        description="One report over the window. format=csv downloads it, and that download is "
        "itself audited (audit.report_exported).",
    )
    def get(self, request: Request, name: str) -> Any:
        report = REPORTS.get(name)
        if report is None:
            raise NotFound("No such report.")
        form = self.valid_query()
        window = form.window()
        if form.cleaned_data["format"] == "csv":
            exports.report_export_record(name, window, file_format="csv", acting_user=request.user)
            return exports.download_response(f"report-{name}", "csv", report.columns, report.rows(window))
        body = {
            "name": report.name,
            "title": report.title,
            "description": report.description,
            "columns": report.columns,
            "since": window.since,
            "until": window.until,
            "period": window.period,
            "rows": report.rows(window),
        }
        return Response(ReportSerializer(body).data)
