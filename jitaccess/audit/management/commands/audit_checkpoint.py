from __future__ import annotations

from django.core.management.base import BaseCommand

from jitaccess.audit.checkpoints import checkpoint_write
from jitaccess.audit.sink import sink_description


class Command(BaseCommand):
    help = "Sign the current head of the audit chain now (beat does this every JIT_AUDIT_CHECKPOINT_SECONDS)."

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        checkpoint = checkpoint_write()
        if checkpoint is None:
            self.stdout.write("nothing new to sign: the head already has a checkpoint (or the trail is empty)")
            return
        self.stdout.write(f"signed checkpoint at event {checkpoint.seq}; appended to {sink_description()}")
