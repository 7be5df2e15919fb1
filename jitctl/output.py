"""Plain-text rendering for people: tables, durations, a request's stage progress."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TextIO

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration_parse(text: str) -> int:
    """Seconds from ``3600``, ``90m``, ``1h30m``, ``2h`` or ``1d``; ValueError otherwise."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {text!r} (say 3600, 90m, 1h30m or 8h)")
    return sum(int(amount) * seconds for amount, seconds in zip(match.groups(), _UNITS.values(), strict=True) if amount)


def duration_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    parts = []
    for unit, size in _UNITS.items():
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def stage_progress(request: dict[str, Any]) -> str:
    """``2/2 approved`` or ``stage 1/2 open``: where a request stands in its approval stages."""
    stages = request.get("stages") or []
    total = len(stages)
    for stage in stages:
        if stage.get("state") in ("open", "denied"):
            return f"stage {stage.get('order')}/{total} {stage.get('state')}"
    done = sum(1 for stage in stages if stage.get("state") == "approved")
    return f"{done}/{total} approved"


def table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    if not rows:
        out.write(empty + "\n")
        return
    cells = [[str(value) if value not in (None, "") else "-" for value in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]
    for row in [list(headers), *cells]:
        out.write("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() + "\n")


def facts(out: TextIO, pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        out.write(f"{label + ':':<{width + 1}} {value if value not in (None, '') else '-'}\n")


def request_detail(out: TextIO, request: dict[str, Any]) -> None:
    facts(
        out,
        [
            ("Request", f"#{request.get('id')}"),
            ("Entitlement", request.get("entitlement")),
            ("Requester", request.get("requester")),
            ("State", request.get("state")),
            ("Progress", stage_progress(request)),
            ("Purpose", request.get("purpose")),
            ("Justification", request.get("justification")),
            ("Ticket", request.get("ticket")),
            ("Duration", duration_text(request.get("duration_seconds"))),
            ("Created", request.get("created_at")),
            ("Decided", request.get("decided_at")),
            ("Digest", request.get("digest")),
        ],
    )
    for stage in request.get("stages") or []:
        decisions = stage.get("decisions") or []
        approvals = sum(1 for decision in decisions if decision.get("decision") == "approve")
        out.write(
            f"  Stage {stage.get('order')} {stage.get('name')} ({stage.get('approver_group', '-')}): "
            f"{stage.get('state')}, {approvals}/{stage.get('required_approvals')} approvals\n"
        )
        for decision in decisions:
            comment = f": {decision['comment']}" if decision.get("comment") else ""
            out.write(
                f"    {decision.get('approver')} {decision.get('decision')} at {decision.get('decided_at')}{comment}\n"
            )
    grant = request.get("grant")
    if grant:
        out.write(
            f"  Grant #{grant.get('id')}: {grant.get('state')}, group {grant.get('security_group')}, "
            f"{grant.get('starts_at')} to {grant.get('expires_at')}\n"
        )
