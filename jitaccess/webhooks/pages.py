"""The security admins' pages for webhooks: the endpoints (with their failed deliveries counted),
creating one (its signing secret shown once), an endpoint's recent deliveries with the failures
first in view, sending a failed one again, rotating the secret and deactivating.

Every change asks for a recent re-authentication first. Writes go through jitaccess.webhooks.services.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jitaccess.accounts.reauth import reauth_detour, reauth_draft_take, reauth_fresh, reauth_url
from jitaccess.errors import Conflict, DomainError
from jitaccess.web.access import security_admin_page
from jitaccess.web.outcomes import object_or_404, refusal_for_person_raise, refusal_shown
from jitaccess.web.paging import CursorForm, keyset_page, page_links
from jitaccess.webhooks.forms import DeliveryStatusForm, WebhookEndpointForm
from jitaccess.webhooks.models import DeliveryStatus
from jitaccess.webhooks.selectors import deliveries_visible_to, endpoints_visible_to
from jitaccess.webhooks.services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_deactivate,
    endpoint_secret_rotate,
)


@security_admin_page
@require_GET
def webhook_list(request: HttpRequest) -> HttpResponse:
    endpoints = endpoints_visible_to(request.user).order_by("-is_active", "name", "pk")
    return render(request, "security/webhooks.html", {"endpoints": endpoints})


def _create_page(request: HttpRequest, form: WebhookEndpointForm, *, status: int = 200) -> HttpResponse:
    return render(request, "security/webhook_form.html", {"form": form}, status=status)


@security_admin_page
def webhook_create_page(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: create the endpoint after a recent re-authentication; show its secret once."""
    if request.method != "POST":
        return _create_page(request, WebhookEndpointForm(reauth_draft_take(request)))
    if not reauth_fresh(request):
        return reauth_detour(request)  # what was typed comes back with the form
    form = WebhookEndpointForm(request.POST)
    if not form.is_valid():
        return _create_page(request, form, status=400)
    try:
        secret, endpoint = endpoint_create(**form.cleaned_data, acting_user=request.user)
    except DomainError as exc:
        return _create_page(request, form, status=refusal_shown(form, exc))
    # Rendered in answer to the POST, never behind a redirect: the secret exists on this page only.
    return render(request, "security/webhook_secret.html", {"secret": secret, "endpoint": endpoint, "created": True})


@security_admin_page
@require_GET
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = object_or_404(endpoints_visible_to(request.user), pk, "webhook endpoint")
    filters, paging = DeliveryStatusForm(request.GET), CursorForm(request.GET)
    context = {"endpoint": endpoint, "filters": filters, "statuses": DeliveryStatus.values}
    if not (filters.is_valid() and paging.is_valid()):
        problems = [f"{name}: {error}" for name, errors in filters.errors.items() for error in errors]
        context["paging_problems"] = problems + (paging.problems() if not paging.is_valid() else [])
        return render(request, "security/webhook_detail.html", context, status=400)
    deliveries = deliveries_visible_to(request.user).filter(endpoint=endpoint)
    if filters.cleaned_data["status"]:
        deliveries = deliveries.filter(status=filters.cleaned_data["status"])
    page = keyset_page(deliveries, key="id", cursor=paging.cursor(), newest_first=True)
    context.update(deliveries=page.rows, links=page_links(request, page))
    return render(request, "security/webhook_detail.html", context)


@security_admin_page
@require_POST
def webhook_rotate_page(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = object_or_404(endpoints_visible_to(request.user), pk, "webhook endpoint")
    if not reauth_fresh(request):
        return redirect(reauth_url(request))
    try:
        secret, endpoint = endpoint_secret_rotate(endpoint, acting_user=request.user)
    except Conflict as exc:
        messages.error(request, exc.detail)
        return redirect("webhooks:detail", pk=endpoint.pk)
    return render(request, "security/webhook_secret.html", {"secret": secret, "endpoint": endpoint, "created": False})


@security_admin_page
@require_POST
def webhook_deactivate_page(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = object_or_404(endpoints_visible_to(request.user), pk, "webhook endpoint")
    if not reauth_fresh(request):
        return redirect(reauth_url(request))
    was_active = endpoint.is_active
    endpoint = endpoint_deactivate(endpoint, acting_user=request.user)
    if was_active:
        messages.success(request, f"{endpoint.name} deactivated; nothing more is sent to it.")
    else:
        messages.info(request, f"{endpoint.name} was already deactivated.")
    return redirect("webhooks:detail", pk=endpoint.pk)


@security_admin_page
@require_POST
def delivery_redeliver_page(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = object_or_404(deliveries_visible_to(request.user), pk, "webhook delivery")
    if not reauth_fresh(request):
        return redirect(reauth_url(request))
    try:
        delivery_redeliver(delivery, acting_user=request.user)
    except DomainError as exc:
        refusal_for_person_raise(exc)
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Delivery {delivery.uuid} of {delivery.action} will be sent again.")
    return redirect("webhooks:detail", pk=delivery.endpoint_id)
