"""``manage.py keys``: operate key rings from the command line (every action is audited).

manage.py keys status                      versions and how many secrets use each
manage.py keys rotate <ring>               new primary version; the rewrap is queued
manage.py keys rewrap <ring> [--batch N]   move data keys to the primary now (resumable)
manage.py keys archive <ring>              archive the versions no secret uses
manage.py keys destroy <ring> <version> --confirm <version>
                                           wipe an archived, unreferenced version: irreversible
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jitaccess.audit.context import audit_context
from jitaccess.errors import DomainError
from keys import services
from keys.models import KeyRing, KeyVersion
from keys.selectors import key_version_references


class Command(BaseCommand):
    help = "Show, rotate, rewrap, archive or destroy key ring versions. Every change is audited."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="versions of every key ring and their references")
        for name in ("rotate", "archive"):
            sub.add_parser(name).add_argument("keyring")
        rewrap = sub.add_parser("rewrap")
        rewrap.add_argument("keyring")
        rewrap.add_argument("--batch", type=int, default=1000)
        destroy = sub.add_parser("destroy")
        destroy.add_argument("keyring")
        destroy.add_argument("version", type=int)
        destroy.add_argument("--confirm", type=int, required=True, help="repeat the version number")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            with audit_context():
                if action == "status":
                    return self._status()
                keyring = self._keyring(options["keyring"])
                if action == "rotate":
                    version = services.keyring_rotate(keyring, acting_user=None)
                    self.stdout.write(f"{keyring.name}: version {version.version} is primary; rewrap queued")
                elif action == "rewrap":
                    result = services.keyring_rewrap(keyring, batch_size=options["batch"])
                    self.stdout.write(
                        f"{keyring.name}: {result.rewrapped} rewrapped to version {result.to_version}, "
                        f"{result.skipped} skipped (changed meanwhile), {result.failed} failed"
                    )
                    if result.failed:
                        raise CommandError("some secrets could not be opened; see the key.rewrapped audit events")
                elif action == "archive":
                    archived = services.keyversions_archive_unreferenced(keyring)
                    self.stdout.write(f"{keyring.name}: archived {archived or 'nothing'}")
                elif action == "destroy":
                    version = KeyVersion.objects.filter(keyring=keyring, version=options["version"]).first()
                    if version is None:
                        raise CommandError(f"{keyring.name} has no version {options['version']}")
                    services.keyversion_destroy(version, acting_user=None, confirm_version=options["confirm"])
                    self.stdout.write(f"{keyring.name}: version {version.version} destroyed")
        except DomainError as exc:
            raise CommandError(exc.detail) from None

    def _keyring(self, name: str) -> KeyRing:
        keyring = KeyRing.objects.filter(name=name).first()
        if keyring is None:
            raise CommandError(f"no key ring named {name!r}")
        return keyring

    def _status(self) -> None:
        for keyring in KeyRing.objects.order_by("name"):
            refs = key_version_references(keyring)
            self.stdout.write(
                f"{keyring.name} ({keyring.provider}{':' + keyring.provider_key if keyring.provider_key else ''}, "
                f"group {keyring.security_group.name}, next rotation {keyring.next_rotation_at:%Y-%m-%d %H:%M} UTC)"
            )
            for version in keyring.versions.order_by("-version"):
                self.stdout.write(f"  v{version.version:<4} {version.state:<10} {refs.get(version.version, 0)} secrets")
