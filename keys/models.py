"""Key rings, key versions and secrets live here (DESIGN.md §5, §9).

The keys app asks the approvals app one question, through
``approvals.selectors.has_access(user, security_group)``, and approvals never imports keys.
"""
