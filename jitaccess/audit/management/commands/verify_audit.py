from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jitaccess.audit.verification import verify_chain


class Command(BaseCommand):
    help = "Verify the audit hash chain; exit non-zero and name the first bad sequence number."

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"audit chain INVALID at seq {report.first_invalid_seq}: {report.reason} "
                f"({report.checked} events verified before it)"
            )
        self.stdout.write(f"audit chain OK: {report.checked} events verified")
