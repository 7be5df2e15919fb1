"""The Celery application: worker and beat both start from here (``celery -A jitaccess``)."""

from __future__ import annotations

import os
import sys

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitaccess.settings")

app = Celery("jitaccess")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def _refuse_weak_keys(**kwargs: object) -> None:
    """The worker and beat run no system checks: a weak key stops them with the same one line."""
    import django

    django.setup()
    from django.core.exceptions import ImproperlyConfigured

    from jitaccess.checks import refuse_weak_keys

    try:
        refuse_weak_keys()
    except ImproperlyConfigured as problem:
        # Celery logs and swallows exceptions from signal handlers, and beat exits quietly on
        # SystemExit: say it on the real stderr (Celery redirects sys.stderr to its log), then stop.
        print(f"configuration error: {problem}", file=sys.__stderr__, flush=True)
        raise SystemExit(1) from None
