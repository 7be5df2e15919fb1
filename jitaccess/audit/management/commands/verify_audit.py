from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jitaccess.audit.verification import verify_audit


class Command(BaseCommand):
    help = (
        "Verify the audit trail: the hash chain, every signed checkpoint (database and sink), and the "
        "chain against them. Exits non-zero and names the first bad sequence number."
    )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        report = verify_audit()
        for problem in report.problems:
            self.stderr.write(f"problem: {problem}")
        if not report.ok:
            where = f"at seq {report.first_invalid_seq}" if report.first_invalid_seq else "in its checkpoints"
            raise CommandError(
                f"audit trail INVALID {where}: {report.reason} ({report.checked} events verified before it)"
            )
        last = report.last_checkpoint
        anchored = f"last checkpoint at event {last['seq']} signed {last['at']}" if last else "no checkpoint yet"
        self.stdout.write(
            f"audit chain OK: {report.checked} events verified; "
            f"{report.checkpoints_checked} checkpoints checked; {anchored}"
        )
