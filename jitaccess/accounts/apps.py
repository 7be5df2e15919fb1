from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "jitaccess.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from jitaccess import schema  # noqa: F401  (OpenAPI extensions)
        from jitaccess.accounts import signin_audit  # noqa: F401  (connects the sign-in receivers)
        from jitaccess.accounts.models import User
        from jitaccess.audit.config_changes import track_config_changes

        # Group memberships decide who may approve: their history belongs in the change log.
        # Passwords and login times are noise or secrets, never logged.
        auditlog.register(User, m2m_fields={"groups"}, exclude_fields=["password", "last_login"])
        track_config_changes(User)
