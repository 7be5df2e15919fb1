"""Field-level change history (django-auditlog) for key rings, the keys app's configuration.

Key versions and secrets are not registered: they hold wrapped key material and envelopes, which
must never be copied into a change log; their history is the hash-chained audit trail.
"""

from auditlog.registry import auditlog

from keys.models import KeyRing

auditlog.register(KeyRing)
