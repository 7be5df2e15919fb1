import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitaccess.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse weak keys here, before the first request.
from jitaccess.checks import refuse_weak_keys  # noqa: E402  (needs the app registry loaded above)

refuse_weak_keys()
