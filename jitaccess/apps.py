from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class JitAdminConfig(AdminConfig):
    # A dotted path, not an import: the site's login form imports auth models, which cannot be
    # loaded while INSTALLED_APPS is still being read.
    default_site = "jitaccess.admin_site.JitAdminSite"


class JitAccessConfig(AppConfig):
    """The project package as an app, so that its system checks are registered at start-up."""

    name = "jitaccess"

    def ready(self) -> None:
        from jitaccess import checks  # noqa: F401 — registers the checks
