from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "jitaccess.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from jitaccess.audit import config_changes  # noqa: F401  (connects the change-log receiver)
