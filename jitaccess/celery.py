"""The Celery application: worker and beat both start from here (``celery -A jitaccess``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitaccess.settings")

app = Celery("jitaccess")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
