from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "jitaccess.audit"
    label = "audit"
    verbose_name = "Audit trail"
