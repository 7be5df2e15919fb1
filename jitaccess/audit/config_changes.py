"""Configuration edited outside a service (the Django admin, mostly) still writes one chained
event: django-auditlog keeps the field diff, the chain keeps the fact that it happened.

Apps name the models whose edits this covers; models whose services write their own event
(key rings, standing memberships) are left out so one change never writes two events.
"""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from jitaccess.audit.services import audit_record

_tracked: set[type] = set()

_CHANGE_NAMES = {0: "create", 1: "update", 2: "delete", 3: "access"}


def track_config_changes(*models: type) -> None:
    _tracked.update(models)


# On the change-log row itself rather than auditlog's post_log signal, which many-to-many
# changes (a user's groups: who may approve) do not send.
@receiver(post_save, sender=LogEntry, dispatch_uid="jitaccess.audit.config_changed")
def record_config_change(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    log_entry = instance
    model = log_entry.content_type.model_class()
    if not created or model not in _tracked:
        return
    changes = log_entry.changes_dict or {}
    audit_record(
        "config.changed",
        actor=log_entry.actor,
        target_type=model._meta.label_lower,
        target_id=str(log_entry.object_pk)[:64],
        data={
            "change": _CHANGE_NAMES.get(log_entry.action, str(log_entry.action)),
            "object": str(log_entry.object_repr)[:200],
            # Field names only: the values stay in the change log (and never include secrets).
            "fields": sorted(changes),
            "log_entry": log_entry.pk,
        },
    )
