import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitaccess.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse weak keys and a single sign-on group map reaching a
# security group here, before the first request.
from jitaccess.checks import refuse_protected_group_map, refuse_weak_keys  # noqa: E402  (needs the app registry)

refuse_weak_keys()
refuse_protected_group_map()
