from django.contrib.admin.apps import AdminConfig


class JitAdminConfig(AdminConfig):
    # A dotted path, not an import: the site's login form imports auth models, which cannot be
    # loaded while INSTALLED_APPS is still being read.
    default_site = "jitaccess.admin_site.JitAdminSite"
