"""``manage.py seed_demo``: the demo users, entitlement, key ring and secrets. Idempotent.

It lives in the keys app because keys is the one app that may use both halves: approvals never
imports keys (DESIGN.md §4).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from approvals.demo import seed_approvals_demo
from keys.demo import seed_keys_demo


class Command(BaseCommand):
    help = "Create (or refresh) the demo users, groups, entitlement, key ring and secrets. Safe to run repeatedly."

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        password = settings.JIT_DEMO_PASSWORD
        if not password:
            raise CommandError("JIT_DEMO_PASSWORD must be set to seed the demo outside DEBUG")
        with transaction.atomic():
            users = seed_approvals_demo(password)
            keyring = seed_keys_demo(users)
        self.stdout.write(self.style.SUCCESS(f"demo data ready: {', '.join(sorted(users))}; key ring {keyring.name}"))
