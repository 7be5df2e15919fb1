"""Writes of the access policy: an entitlement and its ordered approval stages, saved together.

Each write is one transaction. django-auditlog records the field diff of every entitlement and
stage row it touches, and jitaccess/audit/config_changes.py chains a ``config.changed`` event for
each diff inside the same transaction, so a policy change that cannot be audited is not made.
Requests already submitted carry a snapshot of the policy, so nothing here changes a request in
flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from auditlog.context import auditlog_value, set_actor
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from approvals.models import ApprovalStage, Entitlement, Purpose, SecurityGroup
from approvals.workflow import reserved_group_problem
from jitaccess.errors import InvalidInput, NotAllowed
from jitaccess.roles import is_security_admin

MIN_PENDING_TTL_SECONDS = 60
MAX_STAGES = 20


@dataclass(frozen=True)
class PolicySpec:
    """Everything of an entitlement but its slug (fixed at creation: snapshots and the trail name it)."""

    name: str
    security_group: SecurityGroup
    requester_group: Group
    purposes: Sequence[str]
    default_duration_seconds: int
    max_duration_seconds: int
    description: str = ""
    requires_ticket: bool = True
    pending_ttl_seconds: int = 24 * 3600
    is_active: bool = True


@dataclass(frozen=True)
class StageSpec:
    order: int
    name: str
    approver_group: Group
    required_approvals: int = 1
    deadline_seconds: int | None = None


@dataclass(frozen=True)
class PolicyProblem:
    """One reason a policy cannot be saved: ``field`` of the entitlement, or of the stage at
    ``stage`` (its index in the list given, not its order)."""

    field: str
    message: str
    stage: int | None = None

    @property
    def path(self) -> str:
        return self.field if self.stage is None else f"stages.{self.stage}.{self.field}"


def policy_problems(policy: PolicySpec, stages: Sequence[StageSpec]) -> list[PolicyProblem]:
    """Every reason the policy cannot be saved."""
    return draft_problems(_values(policy), [_values(stage) for stage in stages])


def _values(spec: Any) -> dict[str, Any]:
    # Not dataclasses.asdict: that deep-copies the model instances inside.
    return {field.name: getattr(spec, field.name) for field in fields(spec)}


def draft_problems(policy: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]) -> list[PolicyProblem]:
    """The rules of ``policy_problems`` over a draft: the values of a form, where a value that
    failed its own validation is absent and the rules that need it are skipped. So a form can show
    every problem at once rather than one round of them per submission."""
    problems: list[PolicyProblem] = []

    def problem(field: str, message: str, stage: int | None = None) -> None:
        problems.append(PolicyProblem(field, message, stage))

    if "name" in policy and not policy["name"].strip():
        problem("name", "A name is required.")
    requester_group = policy.get("requester_group")
    reserved = reserved_group_problem(requester_group.name) if requester_group is not None else None
    if reserved:
        problem("requester_group", reserved)
    if "purposes" in policy:
        purposes = policy["purposes"]
        unknown = sorted(set(purposes) - set(Purpose.values))
        if not purposes:
            problem("purposes", "Choose at least one purpose a request may give.")
        elif unknown:
            problem("purposes", f"Unknown purpose {', '.join(unknown)}; one of: {', '.join(Purpose.values)}.")
    minimum = settings.JIT_MIN_GRANT_SECONDS
    default, maximum = policy.get("default_duration_seconds"), policy.get("max_duration_seconds")
    if maximum is not None and maximum < minimum:
        problem("max_duration_seconds", f"At least {minimum} seconds, the shortest grant the system issues.")
    if default is not None and default < minimum:
        problem("default_duration_seconds", f"At least {minimum} seconds, the shortest grant the system issues.")
    elif default is not None and maximum is not None and default > maximum:
        problem("default_duration_seconds", f"The default cannot exceed the maximum duration ({maximum} seconds).")
    ttl = policy.get("pending_ttl_seconds")
    if ttl is not None and ttl < MIN_PENDING_TTL_SECONDS:
        problem("pending_ttl_seconds", f"At least {MIN_PENDING_TTL_SECONDS} seconds, so approvers have time to act.")

    if not stages:
        problem("stages", "An entitlement needs at least one approval stage.")
    if len(stages) > MAX_STAGES:
        problem("stages", f"At most {MAX_STAGES} approval stages.")
    problems += _stage_problems(stages, requester_group=requester_group)
    return problems


def _stage_problems(stages: Sequence[Mapping[str, Any]], *, requester_group: Group | None) -> list[PolicyProblem]:
    problems = []
    orders = [stage.get("order") for stage in stages]
    counts = Counter(order for order in orders if order is not None)
    for index, stage in enumerate(stages):
        order = stage.get("order")
        if "name" in stage and not stage["name"].strip():
            problems.append(PolicyProblem("name", "A stage needs a name.", index))
        if order is not None and counts[order] > 1:
            problems.append(
                PolicyProblem("order", f"Order {order} is given to more than one stage; each needs its own.", index)
            )
        elif order is not None and not 1 <= order <= len(stages):
            # Unique orders within 1..n are exactly 1, 2, ..., n: stages are decided in that order.
            count = f"{len(stages)} stage{'s' if len(stages) > 1 else ''}"
            problems.append(
                PolicyProblem(
                    "order", f"Orders run 1, 2, 3, … without gaps; with {count} the highest is {len(stages)}.", index
                )
            )
        approver_group = stage.get("approver_group")
        reserved = reserved_group_problem(approver_group.name) if approver_group is not None else None
        if reserved:
            problems.append(PolicyProblem("approver_group", reserved, index))
        elif approver_group is not None and requester_group is not None and approver_group.pk == requester_group.pk:
            problems.append(
                PolicyProblem(
                    "approver_group",
                    f"{approver_group.name} requests this entitlement, so it cannot also approve it: "
                    "requesters would approve each other's access.",
                    index,
                )
            )
        required = stage.get("required_approvals")
        if required is not None and required < 1:
            problems.append(PolicyProblem("required_approvals", "At least one approval.", index))
        deadline = stage.get("deadline_seconds")
        if deadline is not None and deadline < 1:
            problems.append(PolicyProblem("deadline_seconds", "A deadline is a positive number of seconds.", index))
    return problems


def _checked(acting_user: Any, policy: PolicySpec, stages: Sequence[StageSpec]) -> None:
    if not is_security_admin(acting_user):
        raise NotAllowed("Only security admins change entitlements and their approval stages.")
    problems = policy_problems(policy, stages)
    if problems:
        first = problems[0]
        raise InvalidInput(first.path, first.message)


@contextmanager
def _change_log_actor(user: Any) -> Iterator[None]:
    """Name ``user`` in the change log even outside a web request (a shell, a test).

    Inside a request django-auditlog's middleware already names the user and their address; a
    second, nested context would replace that and then leave the rest of the request unnamed.
    """
    current = auditlog_value.get(None)
    if current is not None and getattr(current.get("actor"), "pk", None) == user.pk:
        yield
        return
    with set_actor(user, remote_addr=(current or {}).get("remote_addr")):
        yield


POLICY_FIELDS = (
    "name",
    "description",
    "security_group",
    "requester_group",
    "purposes",
    "requires_ticket",
    "default_duration_seconds",
    "max_duration_seconds",
    "pending_ttl_seconds",
    "is_active",
)
STAGE_FIELDS = ("name", "approver_group", "required_approvals", "deadline_seconds")


def _policy_values(policy: PolicySpec) -> dict[str, Any]:
    values = {name: getattr(policy, name) for name in POLICY_FIELDS}
    values["name"] = policy.name.strip()
    values["description"] = policy.description.strip()
    # One canonical order, so saving the same choice again is no change.
    values["purposes"] = [value for value in Purpose.values if value in policy.purposes]
    return values


def _stages_save(entitlement: Entitlement, stages: Sequence[StageSpec]) -> None:
    """Make the entitlement's stages exactly ``stages``.

    A stage is identified by its order, as in every snapshot and decision: the row holding order 2
    takes whatever stage 2 now is. Orders are 1..n on both sides, so no write ever collides with
    the unique (entitlement, order) constraint, and each row's change log reads as the change of
    that stage.
    """
    existing = {
        stage.order: stage for stage in ApprovalStage.objects.select_for_update().filter(entitlement=entitlement)
    }
    for spec in sorted(stages, key=lambda s: s.order):
        stage = existing.pop(spec.order, None) or ApprovalStage(entitlement=entitlement, order=spec.order)
        wanted = {
            "name": spec.name.strip(),
            "approver_group": spec.approver_group,
            "required_approvals": spec.required_approvals,
            "deadline_seconds": spec.deadline_seconds,
        }
        changed = stage.pk is None or any(
            getattr(stage, "approver_group_id" if name == "approver_group" else name)
            != (value.pk if name == "approver_group" else value)
            for name, value in wanted.items()
        )
        if changed:
            for name, value in wanted.items():
                setattr(stage, name, value)
            stage.save()
    for stage in existing.values():
        stage.delete()


def entitlement_create(*, slug: str, policy: PolicySpec, stages: Sequence[StageSpec], acting_user: Any) -> Entitlement:
    slug = (slug or "").strip()
    try:
        validate_slug(slug)
    except ValidationError:
        raise InvalidInput("slug", "Letters, digits, hyphens and underscores only.") from None
    _checked(acting_user, policy, stages)
    try:
        with transaction.atomic(), _change_log_actor(acting_user):
            entitlement = Entitlement.objects.create(slug=slug, **_policy_values(policy))
            _stages_save(entitlement, stages)
    except IntegrityError:
        # Two admins creating the same slug at once: the later one is told, anything else propagates.
        if Entitlement.objects.filter(slug=slug).exists():
            raise InvalidInput("slug", f"An entitlement with the slug {slug!r} already exists.") from None
        raise
    return entitlement


def entitlement_update(
    entitlement: Entitlement, *, policy: PolicySpec, stages: Sequence[StageSpec], acting_user: Any
) -> Entitlement:
    """Replace the policy and stages of an entitlement; deactivate it with ``is_active=False``
    (entitlements are never deleted: requests, grants and the trail refer to them)."""
    _checked(acting_user, policy, stages)
    with transaction.atomic(), _change_log_actor(acting_user):
        # The row lock serialises two admins saving the same entitlement: the later one wins whole.
        entitlement = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
        values = _policy_values(policy)
        changed = [
            name
            for name, value in values.items()
            if getattr(entitlement, f"{name}_id" if name.endswith("_group") else name)
            != (value.pk if name.endswith("_group") else value)
        ]
        if changed:
            for name in changed:
                setattr(entitlement, name, values[name])
            entitlement.save(update_fields=changed)
        _stages_save(entitlement, stages)
    return entitlement
