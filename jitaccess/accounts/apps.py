from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "jitaccess.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from jitaccess import schema  # noqa: F401  (OpenAPI extensions)
        from jitaccess.accounts import auditlog_registry, signin_audit  # noqa: F401  (change log, sign-in receivers)
