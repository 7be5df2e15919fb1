"""Field-level change history (django-auditlog) for the configuration models.

Requests, decisions and grants are not registered: their history is the hash-chained audit trail,
written by the services themselves.
"""

from auditlog.registry import auditlog

from approvals.models import ApprovalStage, Entitlement, SecurityGroup, StandingMembership
from jitaccess.audit.config_changes import track_config_changes

auditlog.register(Entitlement)
auditlog.register(ApprovalStage)
auditlog.register(SecurityGroup)
auditlog.register(StandingMembership)

# Memberships are changed by services that write their own events; the rest is edited in the admin.
track_config_changes(Entitlement, ApprovalStage, SecurityGroup)
