from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Keys and secrets"

    def ready(self) -> None:
        from keys import auditlog_registry  # noqa: F401  (registers configuration models)
