"""E-mail at completion of an application, delivered to a real SMTP server on loopback."""

import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app import mailer
from app.extensions import db
from models import Issuance, OutboxMessage
from tests.test_wizard import run_wizard

# From the demo data: Gustav Gran (intygsgivare1), Helena Håkansson (intygsgivare2), Anna Åkesson.
ATTESTER_ADDRESSES = {"person7@example.se", "person8@example.se"}
RECIPIENT_ADDRESS = "person1@example.se"
SERVICECENTER = "Servicecenter Hälsoval, Box 1, 301 80 Halmstad"


class Collector:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()  # returns once the server answers
    yield controller
    controller.stop()


@pytest.fixture
def app_config(smtp_server):
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_server.port,
            "SERVICECENTER_ADDRESS": SERVICECENTER}


def completion_mails(envelopes):
    """(envelope recipients, parsed message) of the completion e-mails received."""
    received = []
    for envelope in envelopes:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        if message["X-Reservkort-Template"] == "application_completed":
            received.append((set(envelope.rcpt_tos), message))
    return received


def test_completion_mails_reach_attesters_and_recipient(login, in_stock_card, smtp_server):
    serial = in_stock_card().serial
    issuance_id = run_wizard(login("Intygsgivare"), serial)
    issuance = db.session.get(Issuance, issuance_id)

    counts = mailer.dispatch_due()
    assert counts["sent"] >= 1 and counts["failed"] == 0 and counts["retry"] == 0

    received = completion_mails(smtp_server.handler.envelopes)
    delivered_to = set().union(*(rcpts for rcpts, _message in received))
    assert delivered_to == ATTESTER_ADDRESSES | {RECIPIENT_ADDRESS}

    for _rcpts, message in received:
        body = message.get_body(preferencelist=("plain",)).get_content()
        assert serial in message["Subject"] and "Anna Åkesson" in message["Subject"]
        # What was done, the end date and the receipt deadline, in Swedish.
        assert f"Reservkortet {serial} har lämnats ut till Anna Åkesson" in body
        assert issuance.valid_until.isoformat() in body
        assert issuance.receipt_due.isoformat() in body
        assert "spärras" in body and "Gustav Gran" in body and "Helena Håkansson" in body
        assert SERVICECENTER in body
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "Anna Åkesson" in html and issuance.receipt_due.isoformat() in html

    # Televäxeln is told too; and nothing is left to send, nothing goes twice.
    assert any("televaxeln@example.se" in envelope.rcpt_tos
               for envelope in smtp_server.handler.envelopes)
    statuses = db.session.execute(
        select(OutboxMessage.status).where(OutboxMessage.issuance_id == issuance_id)
    ).scalars().all()
    assert statuses and set(statuses) == {"sent"}
    before = len(smtp_server.handler.envelopes)
    assert mailer.dispatch_due()["sent"] == 0
    assert len(smtp_server.handler.envelopes) == before
