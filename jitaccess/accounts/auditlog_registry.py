"""Field-level change history (django-auditlog) for the accounts' configuration models."""

from auditlog.registry import auditlog

from jitaccess.accounts.models import GroupSecondFactorPolicy, OIDCIdentity, User
from jitaccess.audit.config_changes import track_config_changes

# Group memberships decide who may approve: their history belongs in the change log.
# Passwords and login times are noise or secrets, never logged.
auditlog.register(User, m2m_fields={"groups"}, exclude_fields=["password", "last_login"])
# Who must use a second factor is security configuration, edited in the admin.
auditlog.register(GroupSecondFactorPolicy)
# Which provider identity signs in as which account.
auditlog.register(OIDCIdentity, exclude_fields=["last_login_at"])

track_config_changes(User, GroupSecondFactorPolicy, OIDCIdentity)
