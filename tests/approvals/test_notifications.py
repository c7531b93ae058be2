"""Email through a real SMTP listener (aiosmtpd): once per key, and bad addresses fail for good."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from django.contrib.auth.models import User
from django.urls import reverse
from temporalio.testing import ActivityEnvironment

from approvals import activities
from approvals.models import OutboundEmail, RequestType
from approvals.services import notification_send
from tests.approvals.test_projection import projection
from tests.conftest import as_user, free_port, make_request
from workflows.types import NotificationInput, NotificationKind, RequestStatus


class Mailbox:
    """An SMTP server's handler: keeps what it accepts, refuses one address for good."""

    refused = "bounce@example.com"

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    yield mailbox
    controller.stop()


def note(request_id: str, user: User, key: str = "key-1") -> NotificationInput:
    return NotificationInput(
        request_id=request_id, kind=NotificationKind.ASSIGNED, recipient_ids=[user.pk], idempotency_key=key
    )


def test_a_retried_send_reaches_the_server_once(
    smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    notification = note(str(request.public_id), people["reviewer1"])
    notification_send(notification=notification)
    notification_send(notification=notification)  # the activity, retried after a lost acknowledgement
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "reviewer1@example.com"
    assert message["Subject"] == "Please review: New laptop"
    assert message["X-Idempotency-Key"] == f"key-1:{people['reviewer1'].pk}"
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


def test_an_email_keeps_its_message_id_however_often_it_is_sent(people: dict[str, User]) -> None:
    from django.core import mail

    from approvals.services import notifications

    send = dict(user=people["reviewer1"], kind="assigned", subject="Review", body_text="b", body_html="")
    notifications.email_once(key="assigned:1", **send)
    OutboundEmail.objects.update(status=OutboundEmail.Status.PENDING)  # as if its record were lost
    notifications.email_once(key="assigned:1", **send)
    notifications.email_once(key="assigned:2", **send)
    ids = [m.message()["Message-ID"] for m in mail.outbox]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("<") and ids[0].endswith("@localhost>")


def test_a_refused_address_fails_for_good_and_is_recorded(
    smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    people["reviewer2"].email = Mailbox.refused
    people["reviewer2"].save()
    notification_send(
        notification=note(str(request.public_id), people["reviewer2"])
    )  # no exception: no retry
    email = OutboundEmail.objects.get()
    assert email.status == OutboundEmail.Status.FAILED
    assert "550" in email.error
    assert smtp.messages == []
    notification_send(notification=note(str(request.public_id), people["reviewer2"]))
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.FAILED  # not tried again


def test_an_unreachable_server_is_retried_later(
    settings: Any, smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    working_port, settings.EMAIL_PORT = settings.EMAIL_PORT, free_port()  # nothing listens there
    with pytest.raises(OSError):
        notification_send(notification=note(str(request.public_id), people["reviewer1"]))
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.PENDING
    settings.EMAIL_PORT = working_port
    notification_send(notification=note(str(request.public_id), people["reviewer1"]))
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT
    assert len(smtp.messages) == 1


def test_a_user_without_an_address_is_recorded_not_retried(
    smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    people["reviewer1"].email = ""
    people["reviewer1"].save()
    notification_send(notification=note(str(request.public_id), people["reviewer1"]))
    email = OutboundEmail.objects.get()
    assert (email.status, email.error) == (OutboundEmail.Status.FAILED, "reviewer1 has no email address.")


def test_a_batch_heartbeats_after_each_recipient(
    smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    beats: list[str] = []
    batch = NotificationInput(
        request_id=str(request.public_id),
        kind=NotificationKind.REMINDER,
        recipient_ids=[people["reviewer1"].pk, people["reviewer2"].pk],
        idempotency_key="batch",
    )
    notification_send(notification=batch, heartbeat=beats.append)
    assert beats == [f"sent to user {people['reviewer1'].pk}", f"sent to user {people['reviewer2'].pk}"]
    assert sorted(m["To"] for m in smtp.messages) == ["reviewer1@example.com", "reviewer2@example.com"]


def test_a_plain_text_email_says_what_was_written_and_the_mailbox_shows_it_once_escaped(
    smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, title="O'Brien's <desk> & chair", started=True)
    notification_send(notification=note(str(request.public_id), people["reviewer1"]))
    message = smtp.messages[0]
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert "“O'Brien's <desk> & chair”" in text.decode()
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert "O&#x27;Brien&#x27;s &lt;desk&gt; &amp; chair" in html.decode()  # HTML stays escaped

    page = as_user(people["admin"]).get(reverse("mailbox")).content.decode()
    assert "“O&#x27;Brien&#x27;s &lt;desk&gt; &amp; chair”" in page
    assert "&amp;#x27;" not in page and "&amp;lt;" not in page


def test_emails_that_come_with_a_projection_go_out_once_it_commits_or_are_handed_back(
    settings: Any, smtp: Mailbox, people: dict[str, User], purchase: RequestType
) -> None:
    """The projection's activity sends the emails its events call for once the projection has
    committed; with the mail server away, it answers with their keys, for the workflow to send
    them on their own (with retries), and the projection stands."""
    request = make_request(people, purchase, started=True)
    public_id = str(request.public_id)
    emails = [note(public_id, people[f"reviewer{n}"], f"along-{n}") for n in (1, 2)]
    sent = projection(public_id, 7, RequestStatus.IN_REVIEW, [], notifications=emails)
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = beats.append

    working_port, settings.EMAIL_PORT = settings.EMAIL_PORT, free_port()  # nothing listens there
    assert asyncio.run(env.run(activities.project_state, sent)) == ["along-1", "along-2"]
    request.refresh_from_db()
    assert request.version == 7 and request.events.filter(seq=7).exists()
    assert [e.status for e in OutboundEmail.objects.all()] == [OutboundEmail.Status.PENDING]
    assert not smtp.messages

    settings.EMAIL_PORT = working_port  # a retry, with the server back: each email once
    assert asyncio.run(env.run(activities.project_state, sent)) == []
    assert asyncio.run(env.run(activities.project_state, sent)) == []
    assert sorted(m["To"] for m in smtp.messages) == ["reviewer1@example.com", "reviewer2@example.com"]
    assert {e.status for e in OutboundEmail.objects.all()} == {OutboundEmail.Status.SENT}
    assert beats  # alive between recipients


def test_an_email_that_went_while_the_database_was_away_is_recorded_once_it_is_back_not_sent_again(
    people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core import mail
    from django.db import OperationalError
    from django.db.models import QuerySet

    from approvals.services import notifications

    update = QuerySet.update
    away = [OperationalError("server closed the connection unexpectedly")] * 2

    def restarting(queryset: QuerySet[Any], **values: Any) -> int:
        if queryset.model is OutboundEmail and values.get("status") == OutboundEmail.Status.SENT and away:
            raise away.pop()
        return update(queryset, **values)

    monkeypatch.setattr(QuerySet, "update", restarting)
    monkeypatch.setattr(notifications, "SENT_MARK_DELAYS", (0.01, 0.01, 0.01))
    send = dict(
        key="assigned:1",
        user=people["reviewer1"],
        kind="assigned",
        subject="Review",
        body_text="b",
        body_html="",
    )
    notifications.email_once(**send)  # a retry of the activity would call it again:
    notifications.email_once(**send)
    assert [m.extra_headers["X-Idempotency-Key"] for m in mail.outbox] == ["assigned:1"]
    assert OutboundEmail.objects.get(idempotency_key="assigned:1").status == OutboundEmail.Status.SENT


def test_an_email_is_recorded_as_sent_before_the_mail_server_is_left(
    smtp: Mailbox, people: dict[str, User], purchase: RequestType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window in which a dying worker leaves an email taken but unrecorded (and so sent
    again) is one UPDATE, not the QUIT's round trip as well."""
    import smtplib

    at_goodbye: list[str] = []
    quit = smtplib.SMTP.quit

    def goodbye(self: smtplib.SMTP) -> Any:
        at_goodbye.append(OutboundEmail.objects.get().status)
        return quit(self)

    monkeypatch.setattr(smtplib.SMTP, "quit", goodbye)
    request = make_request(people, purchase, started=True)
    notification_send(notification=note(str(request.public_id), people["reviewer1"]))
    assert len(smtp.messages) == 1
    assert at_goodbye == [OutboundEmail.Status.SENT]
