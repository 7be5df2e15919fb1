"""Email notifications: who is told what, once, only after commit, and never a secret."""

from __future__ import annotations

import email
import smtplib
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import transaction
from django.urls import reverse

from approvals import links, notifications, services, tasks, workflow
from approvals.models import AccessRequest, ApprovalStage, Grant
from jitaccess import clock, roles
from jitaccess.celery import app
from tests.conftest import approve_through, make_user, submit
from tests.test_settings import manage
from tests.threads import run_concurrently
from tests.worker import celery_processes, wait_for

JUSTIFICATION = "Mailbox sync failing for tenant 42 <script>alert(1)</script> & more"


@pytest.fixture
def people(cast: dict[str, Any]) -> dict[str, Any]:
    """The cast, each with an address."""
    for user in cast.values():
        user.email = f"{user.username}@example.test"
        user.save(update_fields=["email"])
    return cast


@pytest.fixture
def eager() -> Any:
    """Tasks run in-process as soon as they are enqueued (on commit), so sent mail is in the outbox."""
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any, eager: Any) -> Any:
    """Run a block and then what it deferred to after commit; return the mail it sent."""

    class Run:
        def __call__(self, action: Any) -> list[Any]:
            before = len(mail.outbox)
            with django_capture_on_commit_callbacks(execute=True):
                action()
            return mail.outbox[before:]

    return Run()


def recipients(messages: list[Any]) -> list[str]:
    return sorted(address for message in messages for address in message.to)


def html_of(message: Any) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def set_deadline(entitlement: Any, order: int, seconds: int) -> None:
    ApprovalStage.objects.filter(entitlement=entitlement, order=order).update(deadline_seconds=seconds)


def make_overdue(request: AccessRequest) -> None:
    AccessRequest.objects.filter(pk=request.pk).update(stage_deadline_at=clock.now() - timedelta(seconds=1))


# --- approval needed ----------------------------------------------------------------------------


def test_it_asks_the_open_stage_approvers_when_a_request_is_submitted(people, entitlement, committed):
    sent = committed(lambda: submit(people["requester"], entitlement, justification=JUSTIFICATION))
    request = AccessRequest.objects.get()
    assert recipients(sent) == ["legal1a@example.test", "legal1b@example.test"]
    message = sent[0]
    assert message.subject == "Approval needed: DKM test for requester (stage 1 of 2)"
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    assert f"http://127.0.0.1:8000/requests/{request.pk}/" in message.body
    assert "http://127.0.0.1:8000/approvals/" in message.body
    # The text part is plain text; the HTML part escapes what the requester typed.
    assert JUSTIFICATION in message.body
    assert "INC-1001" in message.body and "1 h" in message.body and "Legal review" in message.body
    html = html_of(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'href="http://127.0.0.1:8000/requests/{request.pk}/"' in html


def test_approval_mail_skips_the_requester_people_without_an_address_and_inactive_users(people, entitlement, committed):
    people["requester"].groups.add(*people["legal1a"].groups.all())  # a requester who is also an approver
    people["legal1b"].email = ""
    people["legal1b"].save()
    make_user("legal1c", "legal-l1", email="legal1c@example.test", is_active=False)
    make_user("legal1d", "legal-l1", email="legal1d@example.test")
    sent = committed(lambda: submit(people["requester"], entitlement))
    assert recipients(sent) == ["legal1a@example.test", "legal1d@example.test"]
    assert all(message.subject.startswith("Approval needed:") for message in sent)


def test_the_next_stage_opens_and_only_its_approvers_who_may_still_decide_are_asked(people, entitlement, committed):
    people["legal1a"].groups.add(*people["legal2"].groups.all())  # decides stage 1, cannot decide stage 2
    request = submit(people["requester"], entitlement)
    sent = committed(lambda: services.request_decide(request, approver=people["legal1a"], decision="approve"))
    by_subject = {message.subject: recipients([m for m in sent if m.subject == message.subject]) for message in sent}
    assert by_subject == {
        "Approval needed: DKM test for requester (stage 2 of 2)": ["legal2@example.test", "legal2b@example.test"],
        f"Stage 1 of 2 approved: DKM test (request #{request.pk})": ["requester@example.test"],
    }
    [to_requester] = [m for m in sent if m.to == ["requester@example.test"]]
    assert "legal1a approved stage 1 of 2" in to_requester.body
    assert 'Next: stage 2, "Legal sign-off", awaits legal-l2.' in to_requester.body


# --- decisions and grants -----------------------------------------------------------------------


def test_a_quorum_stage_tells_the_requester_how_many_approvals_are_missing(people, entitlement, committed):
    ApprovalStage.objects.filter(entitlement=entitlement, order=1).update(required_approvals=2)
    request = submit(people["requester"], entitlement)
    sent = committed(lambda: services.request_decide(request, approver=people["legal1a"], decision="approve"))
    [message] = sent
    assert message.to == ["requester@example.test"]
    assert "still needs 1 more approval from legal-l1" in message.body


def test_a_denial_tells_the_requester_why(people, entitlement, committed):
    request = submit(people["requester"], entitlement)
    sent = committed(
        lambda: services.request_decide(request, approver=people["legal1b"], decision="deny", comment="No ticket scope")
    )
    [message] = sent
    assert message.to == ["requester@example.test"]
    assert message.subject == f"Request denied: DKM test (request #{request.pk})"
    assert "legal1b denied your request" in message.body and "Reason given: No ticket scope" in message.body
    assert "No ticket scope" in html_of(message)


def test_the_final_approval_sends_one_mail_with_the_grant_and_its_end(people, entitlement, committed):
    request = approve_through(submit(people["requester"], entitlement), people["legal1a"])
    sent = committed(lambda: services.request_decide(request, approver=people["legal2"], decision="approve"))
    grant = Grant.objects.get(request=request)
    [message] = sent  # not a "stage approved" mail as well
    end = grant.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    assert message.to == ["requester@example.test"]
    assert message.subject == f"Access granted: DKM test until {end}"
    assert f"http://127.0.0.1:8000/grants/{grant.pk}/" in message.body
    assert "stage 1, Legal review: legal1a" in message.body and "stage 2, Legal sign-off: legal2" in message.body
    assert "never sent by email" in message.body


def test_a_task_decides_again_when_it_runs(people, entitlement, django_capture_on_commit_callbacks, eager):
    with django_capture_on_commit_callbacks() as submitted:
        request = submit(people["requester"], entitlement)
    with django_capture_on_commit_callbacks() as approved:
        approve_through(request, people["legal1a"], people["legal2"])
    grant = Grant.objects.get(request=request)
    services.grant_revoke(grant, acting_user=people["requester"])
    for callback in [*submitted, *approved]:
        callback()
    # Stage 1 closed, stage 2 was decided, and the grant was revoked before the tasks ran.
    assert mail.outbox == []


# --- rollback and broker outages ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_nothing_is_enqueued_when_the_transaction_rolls_back(people, entitlement):
    with mock.patch.object(tasks.notify, "apply_async") as apply_async:
        with pytest.raises(RuntimeError), transaction.atomic():
            submit(people["requester"], entitlement)
            raise RuntimeError("the audit write failed")
        apply_async.assert_not_called()
        assert not AccessRequest.objects.exists()
        request = submit(people["requester"], entitlement)
        # Only ids travel through the broker.
        apply_async.assert_called_once_with(args=[["approval_needed"], request.pk, 1])


@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_task_never_reached_the_broker_is_claimed_again(people, entitlement, caplog):
    set_deadline(entitlement, 1, 60)
    request = submit(people["requester"], entitlement)
    make_overdue(request)
    with mock.patch.object(tasks.notify, "apply_async", side_effect=ConnectionError("broker down")):
        assert notifications.stage_deadlines_claim() == 1
    assert "could not enqueue stage_reminder+stage_escalation notification" in caplog.text
    request.refresh_from_db()
    assert request.stage_reminded_at is None
    with mock.patch.object(tasks.notify, "apply_async") as apply_async:
        assert notifications.stage_deadlines_claim() == 1
        apply_async.assert_called_once_with(args=[["stage_reminder", "stage_escalation"], request.pk, 1])


# --- expiry warnings ----------------------------------------------------------------------------


def ends_in(grant: Grant, seconds: int) -> None:
    now = clock.now()
    Grant.objects.filter(pk=grant.pk).update(
        starts_at=now - timedelta(hours=1), expires_at=now + timedelta(seconds=seconds)
    )


def test_the_expiry_warning_goes_once_and_carries_no_credential(people, granted, committed):
    grant = granted.grant
    token, _ = services.grant_credential_mint(grant, acting_user=people["requester"])
    ends_in(grant, 3600)
    assert committed(notifications.expiry_warnings_claim) == []  # not yet within ten minutes
    ends_in(grant, 590)
    sent = committed(notifications.expiry_warnings_claim)
    [message] = sent
    assert message.to == ["requester@example.test"]
    assert message.subject == f"Access ends in 10 min: DKM test (grant #{grant.pk})"
    assert f"http://127.0.0.1:8000/grants/{grant.pk}/" in message.body
    for part in (message.subject, message.body, html_of(message)):
        assert token not in part and token[:12] not in part
    assert committed(notifications.expiry_warnings_claim) == []
    assert committed(notifications.expiry_warnings_claim) == []


def test_no_expiry_warning_for_revoked_expired_or_short_grants(people, entitlement, committed):
    revoked, expired, running = (
        approve_through(submit(people["requester"], entitlement), people["legal1a"], people["legal2"]).grant
        for _ in range(3)
    )
    for grant in (revoked, expired, running):
        ends_in(grant, 300)
    services.grant_revoke(revoked, acting_user=people["secadmin"])
    Grant.objects.filter(pk=expired.pk).update(expires_at=clock.now() - timedelta(seconds=1))
    short = approve_through(
        submit(people["requester"], entitlement, duration_seconds=300), people["legal1b"], people["legal2b"]
    ).grant
    sent = committed(notifications.expiry_warnings_claim)
    assert [message.subject for message in sent] == [f"Access ends in 5 min: DKM test (grant #{running.pk})"]
    # A short grant's end was in the mail that issued it; it is never claimed.
    assert Grant.objects.get(pk=short.pk).expiry_warned_at is None


def test_a_grant_revoked_after_its_warning_was_claimed_gets_no_warning(
    people, granted, django_capture_on_commit_callbacks, eager
):
    ends_in(granted.grant, 300)
    with django_capture_on_commit_callbacks() as claimed:
        assert notifications.expiry_warnings_claim() == 1
    services.grant_revoke(granted.grant, acting_user=people["requester"])
    for callback in claimed:
        callback()
    assert mail.outbox == []


# --- stage deadlines ----------------------------------------------------------------------------


def test_the_stage_clock_is_kept_outside_the_digest(people, entitlement):
    set_deadline(entitlement, 1, 3600)
    request = submit(people["requester"], entitlement)
    assert request.stage_deadline_at - request.stage_opened_at == timedelta(seconds=3600)
    assert request.stage_reminded_at is None
    signed = request.digest
    request.stage_opened_at = request.stage_deadline_at = request.stage_reminded_at = clock.now()
    assert workflow.request_digest(request) == signed
    request = approve_through(request, people["legal1a"])  # the digest check of a decision still passes
    assert request.current_stage == 2 and request.stage_deadline_at is None  # stage 2 has no deadline


def test_an_overdue_stage_reminds_its_approvers_and_escalates_once_per_stage(people, entitlement, committed):
    set_deadline(entitlement, 1, 3600)
    set_deadline(entitlement, 2, 7200)
    make_user("secadmin-nomail", roles.SECURITY_ADMINS)
    request = submit(people["requester"], entitlement)
    assert committed(notifications.stage_deadlines_claim) == []  # the deadline has not passed
    make_overdue(request)
    sent = committed(notifications.stage_deadlines_claim)
    reminders = [m for m in sent if m.subject.startswith("Reminder, approval overdue:")]
    escalations = [m for m in sent if m.subject.startswith("Escalation, approval overdue:")]
    assert len(sent) == len(reminders) + len(escalations)
    assert recipients(reminders) == ["legal1a@example.test", "legal1b@example.test"]
    assert recipients(escalations) == ["secadmin@example.test"]
    assert escalations[0].subject == "Escalation, approval overdue: DKM test for requester (stage 1 of 2, legal-l1)"
    assert "2 members of legal-l1 can decide it" in escalations[0].body
    assert committed(notifications.stage_deadlines_claim) == []  # once per stage

    # The next stage starts its own clock and is reminded once in turn.
    request = approve_through(request, people["legal1a"])
    request.refresh_from_db()
    assert request.stage_reminded_at is None
    assert request.stage_deadline_at - request.stage_opened_at == timedelta(seconds=7200)
    make_overdue(request)
    sent = committed(notifications.stage_deadlines_claim)
    assert recipients(sent) == ["legal2@example.test", "legal2b@example.test", "secadmin@example.test"]
    assert committed(notifications.stage_deadlines_claim) == []


def test_no_reminder_once_a_decision_closed_the_stage(
    people, entitlement, committed, django_capture_on_commit_callbacks
):
    set_deadline(entitlement, 1, 60)
    denied = submit(people["requester"], entitlement)
    services.request_decide(denied, approver=people["legal1a"], decision="deny", comment="no")
    make_overdue(denied)
    assert committed(notifications.stage_deadlines_claim) == []  # a decided request is not claimed

    raced = submit(people["admin2"], entitlement)
    make_overdue(raced)
    with django_capture_on_commit_callbacks() as claimed:
        assert notifications.stage_deadlines_claim() == 1
    approve_through(raced, people["legal1b"])  # stage 1 decided after the claim, before the task ran
    before = len(mail.outbox)
    for callback in claimed:
        callback()
    assert mail.outbox[before:] == []


# --- concurrency: two beat hosts ----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_send_each_notification_once(people, entitlement, eager):
    set_deadline(entitlement, 1, 60)
    requests = [submit(people["requester"], entitlement) for _ in range(3)]
    grants = [
        approve_through(submit(people["admin2"], entitlement), people["legal1a"], people["legal2"]).grant
        for _ in range(3)
    ]
    for request in requests:
        make_overdue(request)
    for grant in grants:
        ends_in(grant, 300)
    mail.outbox.clear()
    for _ in range(3):
        results = run_concurrently(
            [
                notifications.stage_deadlines_claim,
                notifications.stage_deadlines_claim,
                notifications.expiry_warnings_claim,
                notifications.expiry_warnings_claim,
            ]
        )
        assert all(isinstance(result, int) for result in results), results
    subjects = [message.subject for message in mail.outbox]
    # Per overdue request: two approvers reminded, one security admin told; per grant one warning.
    assert sum(s.startswith("Reminder,") for s in subjects) == 2 * len(requests)
    assert sum(s.startswith("Escalation,") for s in subjects) == len(requests)
    assert sum(s.startswith("Access ends in") for s in subjects) == len(grants)
    assert len(subjects) == 4 * len(requests)


# --- sending failures ---------------------------------------------------------------------------


class FlakyBackend(LocmemBackend):
    """A relay that drops the connection on the first ``failures`` attempts."""

    failures = 1
    attempts = 0

    def send_messages(self, messages: Any) -> int:
        FlakyBackend.attempts += 1
        if FlakyBackend.attempts <= FlakyBackend.failures:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


def test_a_failed_send_is_retried_and_logged_without_the_body(people, entitlement, settings, caplog):
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.attempts, FlakyBackend.failures = 0, 1
    request = submit(people["requester"], entitlement, justification=JUSTIFICATION)
    tasks.send_notification.apply(args=["approval_needed", request.pk, people["legal1a"].pk, 1])
    assert [message.to for message in mail.outbox] == [["legal1a@example.test"]]
    assert FlakyBackend.attempts == 2
    assert "could not send approval_needed notification" in caplog.text
    assert "SMTPServerDisconnected" in caplog.text
    assert "tenant 42" not in caplog.text


def test_a_relay_that_keeps_failing_gives_up_after_a_few_retries(people, entitlement, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.attempts, FlakyBackend.failures = 0, 100
    request = submit(people["requester"], entitlement)
    result = tasks.send_notification.apply(args=["approval_needed", request.pk, people["legal1a"].pk, 1])
    assert result.failed() and isinstance(result.result, smtplib.SMTPServerDisconnected)
    assert FlakyBackend.attempts == 1 + tasks.send_notification.max_retries
    assert mail.outbox == []


def test_a_user_who_is_no_longer_a_recipient_is_not_mailed(people, entitlement):
    request = submit(people["requester"], entitlement)
    people["legal1a"].groups.clear()
    assert tasks.send_notification.apply(args=["approval_needed", request.pk, people["legal1a"].pk, 1]).get() is False
    assert tasks.send_notification.apply(args=["approval_needed", request.pk, people["requester"].pk, 1]).get() is False
    assert mail.outbox == []


# --- configuration and links --------------------------------------------------------------------


def test_links_use_the_public_url_and_the_named_pages(settings):
    settings.JIT_PUBLIC_URL = "https://jitaccess.example.com"
    assert links.request_url(7) == "https://jitaccess.example.com" + reverse("approvals:request-detail", args=[7])
    assert links.inbox_url() == "https://jitaccess.example.com" + reverse("approvals:inbox")
    assert links.grant_url(9) == "https://jitaccess.example.com" + reverse("approvals:grant-detail", args=[9])


def test_a_public_url_with_a_path_or_without_a_scheme_stops_start_up(tmp_path):
    result = manage("check", DJANGO_DEBUG="true", JIT_VAR_DIR=str(tmp_path), JIT_PUBLIC_URL="jitaccess.example.com")
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "configuration error: JIT_PUBLIC_URL must be a scheme and host such as https://jitaccess.example.com"
    ]


# --- a real worker and beat ---------------------------------------------------------------------


def mails_in(folder: Path) -> list[Any]:
    """Messages the file backend wrote: one file per connection, messages separated by a rule."""
    found = []
    for path in sorted(folder.glob("*.log")) if folder.exists() else []:
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                found.append(email.message_from_bytes(chunk, policy=policy.default))
    return found


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_and_beat_send_the_mail(people, entitlement, tmp_path):
    outbox = tmp_path / "mail"
    set_deadline(entitlement, 1, 2)
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(outbox),
        "JIT_NOTIFY_SWEEP_SECONDS": "1",
    }
    with celery_processes(tmp_path, beat=True, extra_env=env):
        request = submit(people["requester"], entitlement, justification=JUSTIFICATION)
        # Asked at once; two seconds later beat finds the stage overdue: reminded and escalated.
        assert wait_for(lambda: len(mails_in(outbox)) >= 5, timeout=30), [m["Subject"] for m in mails_in(outbox)]
    sent = sorted((str(m["To"]), str(m["Subject"]).split(":")[0]) for m in mails_in(outbox))
    assert sent == [
        ("legal1a@example.test", "Approval needed"),
        ("legal1a@example.test", "Reminder, approval overdue"),
        ("legal1b@example.test", "Approval needed"),
        ("legal1b@example.test", "Reminder, approval overdue"),
        ("secadmin@example.test", "Escalation, approval overdue"),
    ]
    [asked] = [m for m in mails_in(outbox) if m["To"] == "legal1a@example.test" and "needed" in m["Subject"]]
    assert asked.get_body(("plain",)).get_content().count(JUSTIFICATION) == 1
    assert asked.get_body(("html",)) is not None
    request.refresh_from_db()
    assert request.stage_reminded_at is not None
