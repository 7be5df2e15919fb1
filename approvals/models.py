from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from jitaccess.accounts.models import HashedBearerToken


class Purpose(models.TextChoices):
    DEBUGGING = "debugging"
    TROUBLESHOOTING = "troubleshooting"
    AUDITING = "auditing"


class SecurityGroup(models.Model):
    """A protected group whose members may decrypt its secrets.

    Standing members are service accounts only; people join temporarily through a ``Grant``.
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class StandingMembership(models.Model):
    """Permanent membership of a service account (never a person) in a security group."""

    security_group = models.ForeignKey(SecurityGroup, on_delete=models.CASCADE, related_name="standing")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="standing")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["security_group", "user"], name="standing_membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ∈ {self.security_group}"


class Entitlement(models.Model):
    """What can be requested: temporary membership of a security group, and the policy for it."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    security_group = models.ForeignKey(SecurityGroup, on_delete=models.PROTECT, related_name="entitlements")
    requester_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    purposes = models.JSONField(default=list, help_text="Allowed purposes, a subset of: " + ", ".join(Purpose.values))
    requires_ticket = models.BooleanField(default=True)
    default_duration_seconds = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    max_duration_seconds = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    pending_ttl_seconds = models.PositiveIntegerField(default=24 * 3600, validators=[MinValueValidator(60)])
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(default_duration_seconds__lte=models.F("max_duration_seconds")),
                name="entitlement_default_within_max",
            ),
            models.CheckConstraint(condition=Q(default_duration_seconds__gt=0), name="entitlement_default_positive"),
        ]

    def __str__(self) -> str:
        return self.slug


class ApprovalStage(models.Model):
    """One ordered level of approval: N approvals from the approver group open the next stage."""

    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    name = models.CharField(max_length=100)
    approver_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    required_approvals = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    deadline_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Remind / escalate when the stage stays open this long."
    )

    class Meta:
        ordering = ["entitlement", "order"]
        constraints = [
            models.UniqueConstraint(fields=["entitlement", "order"], name="stage_order_unique"),
            models.CheckConstraint(condition=Q(order__gte=1), name="stage_order_positive"),
            models.CheckConstraint(condition=Q(required_approvals__gte=1), name="stage_quorum_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.entitlement.slug} #{self.order} {self.name}"


class RequestState(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class AccessRequest(models.Model):
    """A request for temporary membership, frozen at submission.

    ``policy_snapshot`` holds the entitlement's policy and stages as they were, so editing the
    policy never changes a request in flight; ``digest`` is the hash approvers sign.
    """

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests")
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="requests")
    # The group the approvers sign for, fixed at submission like the rest of the policy.
    security_group = models.ForeignKey(SecurityGroup, on_delete=models.PROTECT, related_name="requests")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    justification = models.TextField()
    ticket = models.CharField(max_length=200, blank=True)
    duration_seconds = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=RequestState.choices, default=RequestState.PENDING)
    # Order of the open stage while pending; after a denial, the stage that denied.
    current_stage = models.PositiveSmallIntegerField(null=True, blank=True)
    # The open stage's approver group name, kept beside current_stage so "awaiting me" is a query.
    open_stage_group = models.CharField(max_length=150, blank=True)
    # "|legal-l1|legal-l2|": the snapshot's approver groups, so visibility follows the snapshot
    # with a plain query on every database.
    approver_groups = models.CharField(max_length=2000, blank=True)
    policy_snapshot = models.JSONField()
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    pending_expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    # The open stage's clock, for reminders (bookkeeping outside the digest): when it opened, when
    # its deadline from the snapshot passes (null: none), and when its approvers were reminded.
    stage_opened_at = models.DateTimeField(null=True, blank=True)
    stage_deadline_at = models.DateTimeField(null=True, blank=True)
    stage_reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "open_stage_group"]),
            models.Index(fields=["requester", "-id"]),
            models.Index(fields=["state", "pending_expires_at"]),
            models.Index(
                fields=["stage_deadline_at"],
                condition=Q(state="pending", stage_reminded_at__isnull=True),
                name="request_stage_deadline_due",
            ),
        ]

    def __str__(self) -> str:
        return f"request {self.pk} ({self.state})"


class DecisionKind(models.TextChoices):
    APPROVE = "approve"
    DENY = "deny"


class Decision(models.Model):
    """One approver's sign-off or denial of one stage. Append-only."""

    request = models.ForeignKey(AccessRequest, on_delete=models.PROTECT, related_name="decisions")
    stage_order = models.PositiveSmallIntegerField()
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    decision = models.CharField(max_length=8, choices=DecisionKind.choices)
    comment = models.TextField(blank=True)
    digest = models.CharField(max_length=64, help_text="The request digest the approver signed.")
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["request", "stage_order", "decided_at", "id"]
        constraints = [
            # Invariant 2 in the database: one person decides at most one stage of a request.
            models.UniqueConstraint(fields=["request", "approver"], name="decision_one_per_approver"),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} stage {self.stage_order} of request {self.request_id}"


class GrantState(models.TextChoices):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Grant(models.Model):
    """Temporary membership of a security group, issued by the final approval of a request."""

    # OneToOne: the database itself refuses a second grant for one request (invariant 4).
    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="grant")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants")
    security_group = models.ForeignKey(SecurityGroup, on_delete=models.PROTECT, related_name="grants")
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="grants")
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=GrantState.choices, default=GrantState.ACTIVE)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    end_reason = models.TextField(blank=True)
    # When the precise expiry task was last handed to the broker (bookkeeping, not state).
    expiry_enqueued_at = models.DateTimeField(null=True, blank=True)
    # When the expiry warning was handed to the mailer: at most one per grant (bookkeeping).
    expiry_warned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "expires_at"]),
            models.Index(fields=["user", "security_group", "state"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("starts_at")), name="grant_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"grant {self.pk} {self.user} → {self.security_group} ({self.state})"


class GrantCredential(HashedBearerToken):
    """The time-boxed bearer credential of a grant; stored only as a hash, shown once."""

    is_grant_credential = True  # tells the API's default permission to scope it

    grant = models.OneToOneField(Grant, on_delete=models.PROTECT, related_name="credential")

    def __str__(self) -> str:
        return f"credential of grant {self.grant_id}"
