"""Bookkeeping for email notifications: the open stage's clock on requests (opened, deadline,
reminded) and the expiry warning on grants. None of it enters the request digest."""

from datetime import timedelta

from django.conf import settings
from django.db import migrations, models
from django.db.models import Max


def start_open_stage_clocks(apps, schema_editor):
    """Pending requests get the clock of their open stage: it opened with the last approval of an
    earlier stage, or at submission; its deadline comes from the request's own policy snapshot."""
    AccessRequest = apps.get_model("approvals", "AccessRequest")
    Decision = apps.get_model("approvals", "Decision")
    for request in AccessRequest.objects.filter(state="pending", current_stage__isnull=False).iterator():
        last = Decision.objects.filter(
            request=request, stage_order__lt=request.current_stage, decision="approve"
        ).aggregate(at=Max("decided_at"))["at"]
        opened = last or request.created_at
        stage = next((s for s in request.policy_snapshot["stages"] if s["order"] == request.current_stage), {})
        deadline = stage.get("deadline_seconds")
        request.stage_opened_at = opened
        request.stage_deadline_at = opened + timedelta(seconds=deadline) if deadline else None
        request.save(update_fields=["stage_opened_at", "stage_deadline_at"])


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0002_decision_guards"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="accessrequest",
            name="stage_deadline_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="accessrequest",
            name="stage_opened_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="accessrequest",
            name="stage_reminded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="grant",
            name="expiry_warned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="accessrequest",
            index=models.Index(
                condition=models.Q(("stage_reminded_at__isnull", True), ("state", "pending")),
                fields=["stage_deadline_at"],
                name="request_stage_deadline_due",
            ),
        ),
        migrations.RunPython(start_open_stage_clocks, migrations.RunPython.noop),
    ]
