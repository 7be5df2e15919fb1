"""Field-level change history (django-auditlog) for the configuration models.

Requests, decisions and grants are not registered: their history is the hash-chained audit trail,
written by the services themselves.
"""

from auditlog.registry import auditlog

from approvals.models import ApprovalStage, Entitlement, SecurityGroup, StandingMembership

auditlog.register(Entitlement)
auditlog.register(ApprovalStage)
auditlog.register(SecurityGroup)
auditlog.register(StandingMembership)
