"""Two applications at the same moment on PostgreSQL: exactly one wins, the other gets the
rule code, never a database error."""

import threading
from datetime import date

import pytest
from flask_login import login_user

from app import clock
from app.errors import RuleViolation
from app.extensions import db
from app.workflow import application
from tests.workflow_support import attestations, free_cards, person


def _race(app, attempts, patch_open_check=False):
    """Run the attempts (serial, recipient, reason) in threads released together."""
    barrier = threading.Barrier(len(attempts))
    outcomes = [None] * len(attempts)

    def attempt(index, serial, recipient_hsa_id, reason, attester_id):
        with app.app_context(), app.test_request_context():
            try:
                login_user(app.appbuilder.sm.find_user(username="intygsgivare1"))
                with clock.frozen_at(clock.now()):
                    attester = db.session.get(type(person("Helena")), attester_id)
                    barrier.wait(timeout=20)
                    application.apply_in_person(serial, recipient_hsa_id, reason,
                                                attestations([attester]), True, True)
                outcomes[index] = "ok"
            except RuleViolation as exc:
                outcomes[index] = exc.rule
            except Exception as exc:  # noqa: BLE001  (any other outcome fails the test below)
                outcomes[index] = repr(exc)
            finally:
                db.session.remove()

    helena = person("Helena").id
    threads = [threading.Thread(target=attempt, args=(i, *a, helena))
               for i, a in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes, key=str)


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(date(2026, 3, 2))


@pytest.mark.postgresql_only
def test_same_card_twice_at_once(app, dialect):
    serial = free_cards(1)[0]
    outcomes = _race(app, [(serial, person("Anna").hsa_id, "forgotten"),
                           (serial, person("Björn").hsa_id, "awaiting_new_card")])
    assert outcomes == ["card_not_in_stock", "ok"]


@pytest.mark.postgresql_only
def test_same_recipient_twice_at_once(app, dialect, monkeypatch):
    # Both pass the open-issuance check at the same instant; the index decides.
    monkeypatch.setattr(application, "_open_issuance", lambda person: None)
    first, second = free_cards(2)
    anna = person("Anna").hsa_id
    outcomes = _race(app, [(first, anna, "forgotten"), (second, anna, "forgotten")])
    assert outcomes == ["ok", "recipient_has_open_issuance"]
