"""Email, sent once per idempotency key however often the activity is retried."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import InterfaceError, OperationalError, connection
from django.template.loader import render_to_string
from django.utils import timezone

from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest, OutboundEmail
from approvals.services.email_links import email_link_make
from workflows.types import ActionKind, NotificationInput, NotificationKind

logger = logging.getLogger(__name__)
DECISION_EMAILS = (NotificationKind.ASSIGNED, NotificationKind.REMINDER, NotificationKind.ESCALATED)

EMAIL_SUBJECTS = {
    NotificationKind.ASSIGNED: "Please review: {title}",
    NotificationKind.REMINDER: "Reminder: {title} is waiting for you",
    NotificationKind.ESCALATED: "Escalated to you: {title} is past its deadline",
    NotificationKind.DECIDED: "Your request “{title}” was {status}",
    NotificationKind.CHANGES_REQUESTED: "Changes requested on “{title}”",
    NotificationKind.WITHDRAWN: "Withdrawn: {title}",
    NotificationKind.EXPIRED: "Your request “{title}” expired",
    NotificationKind.PROGRESS: "“{title}” moved on to {stage}",
    NotificationKind.CANCELLED: "Cancelled: {title}",
    NotificationKind.FULFILLED: "Fulfilled: {title}",
    NotificationKind.ROLLED_BACK: "Fulfilment failed — rolled back: {title}",
    NotificationKind.ACCESS_EXPIRING: "Your access ends soon: {title}",
    NotificationKind.ACCESS_ENDED: "Your access has ended: {title}",
    NotificationKind.EXTENSION_ASKED: "More time asked: {title}",
    NotificationKind.EXTENSION_APPROVED: "More time approved: {title}",
    NotificationKind.EXTENSION_REFUSED: "More time refused: {title}",
}


def notification_send(
    *, notification: NotificationInput, heartbeat: Callable[[str], None] | None = None
) -> None:
    """Email each recipient once per idempotency key, however often this is retried.

    `heartbeat` is called after each recipient, so a long batch shows it is alive.
    """
    request = (
        ApprovalRequest.objects.select_related("request_type", "requester")
        .filter(public_id=notification.request_id)
        .first()
    )
    if request is None:
        raise NotFound(f"No request {notification.request_id}.")
    for user in User.objects.filter(pk__in=notification.recipient_ids).order_by("pk"):
        _email_once(request=request, notification=notification, user=user)
        if heartbeat is not None:
            heartbeat(f"sent to user {user.pk}")


def _email_once(*, request: ApprovalRequest, notification: NotificationInput, user: User) -> None:
    key = f"{notification.idempotency_key}:{user.pk}"
    kind = notification.kind
    context = {
        "request": request,
        "recipient": user,
        "comment": notification.comment,
        "actor_name": notification.actor_name,
        "url": settings.SITE_URL + request.get_absolute_url(),
        "site_url": settings.SITE_URL,
    }
    if kind in DECISION_EMAILS and request.participants.filter(user=user, pending=True).exists():
        context["approve_url"] = email_link_make(user=user, request=request, action=ActionKind.APPROVE)
        context["reject_url"] = email_link_make(user=user, request=request, action=ActionKind.REJECT)
    subject = EMAIL_SUBJECTS[kind].format(
        title=request.title, status=request.get_status_display().lower(), stage=request.stage_name
    )
    email_once(
        key=key,
        user=user,
        kind=kind.value,
        subject=subject,
        body_text=render_to_string(f"approvals/email/{kind.value}.txt", context),
        body_html=render_to_string(f"approvals/email/{kind.value}.html", context),
        request=request,
    )


def email_once(
    *,
    key: str,
    user: User,
    kind: str,
    subject: str,
    body_text: str,
    body_html: str,
    request: ApprovalRequest | None = None,
) -> None:
    """Send this email to `user` once per key: kept (as the mailbox shows it), then sent; a
    retry finds it sent, or refused for good, and sends nothing."""
    email, _ = OutboundEmail.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "request": request,
            "kind": kind,
            "to": user.email,
            "subject": subject,
            "body_text": body_text,
            "body_html": body_html,
        },
    )
    if email.status != OutboundEmail.Status.PENDING:
        return
    if not email.to:
        OutboundEmail.objects.filter(pk=email.pk).update(
            status=OutboundEmail.Status.FAILED, error=f"{user.get_username()} has no email address."
        )
        return
    headers = {"X-Idempotency-Key": key, "Message-ID": message_id(key)}
    connection = get_connection()
    message = EmailMultiAlternatives(
        email.subject, email.body_text, to=[email.to], headers=headers, connection=connection
    )
    message.attach_alternative(email.body_html, "text/html")
    try:
        connection.open()
        message.send()  # on the open connection: back once the server has taken it
        # Recorded before taking leave of the server, so that a worker that dies after the
        # server took the email is unlikely to have not yet recorded it (one UPDATE between).
        _mark_sent(email.pk, key)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        # The address is refused for good: retrying cannot help. Recorded for staff to see.
        OutboundEmail.objects.filter(pk=email.pk).update(
            status=OutboundEmail.Status.FAILED, error=str(exc)[:2000]
        )
        logger.warning("Email %s to %s refused: %s", key, email.to, exc)
        return
    except smtplib.SMTPResponseException as exc:
        if 500 <= exc.smtp_code < 600:
            OutboundEmail.objects.filter(pk=email.pk).update(
                status=OutboundEmail.Status.FAILED, error=f"{exc.smtp_code} {exc.smtp_error!r}"[:2000]
            )
            logger.warning("Email %s to %s failed permanently: %s", key, email.to, exc)
            return
        raise  # 4xx: a temporary failure; the activity retries with backoff
    # Any other error (connection refused, timeout) propagates and the activity retries.
    finally:
        _leave(connection, key)


def _leave(connection: BaseEmailBackend, key: str) -> None:
    """Say goodbye to the mail server; if it is gone by then, what it took is taken all the same."""
    try:
        connection.close()
    except (smtplib.SMTPException, OSError) as exc:
        logger.info("Email %s: the mail server went before goodbye: %s", key, exc)


def message_id(key: str) -> str:
    """The email's Message-ID, the same on every try: should a worker die in the instant between
    the mail server taking an email and its record as sent, the email that goes again is the
    same message by its id, which mail systems show once."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


SENT_MARK_DELAYS = (0.25, 0.5, 1, 2, 4, 8)  # about 16 s in all: within the email heartbeat's 30


def _mark_sent(pk: int, key: str) -> None:
    """Record that the email went. It is out: were the database away just now (restarting, say),
    failing here would have the activity's retry send it again, so wait for the database a while
    rather than fail. (A worker killed between the two, in that instant, still sends it again:
    `message_id` makes that the same message.)"""
    for delay in (*SENT_MARK_DELAYS, None):
        try:
            OutboundEmail.objects.filter(pk=pk).update(
                status=OutboundEmail.Status.SENT, sent_at=timezone.now()
            )
            return
        except (OperationalError, InterfaceError):
            if delay is None or connection.in_atomic_block:  # (a transaction's caller handles it)
                raise
            logger.warning("Email %s went, but is not yet recorded as sent; trying again", key, exc_info=True)
            connection.close()  # the next try connects afresh
            time.sleep(delay)
