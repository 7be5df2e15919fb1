from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # Registers the configuration models with auditlog, and the auditor reports on approvals.
        from approvals import auditlog_registry, reports  # noqa: F401
