"""Deviations: creation, notes, closing, who sees what, the streamed report; the Kobe register."""

from datetime import date

import pytest
from sqlalchemy import select

from app.errors import NotFound, RuleViolation
from app.validation import FieldError
from app.workflow import deviations, kobe
from models import Deviation, KobeRecord
from tests.workflow_support import apply, audit_actions, person


@pytest.fixture(autouse=True)
def _frozen(set_now):
    set_now(date(2026, 3, 2))


def _visible(app, user):
    return [d.type + ":" + (d.person.name if d.person else "-") for d in
            app.extensions["sqlalchemy"].session.execute(
                deviations.visible_deviations(user)).unique().scalars()]


def test_deviations_and_who_sees_them(app, as_user, session):
    issuance = apply(as_user)  # Anna, unit 0 (the chef's unit)
    with as_user("servicecenter"):
        with pytest.raises(FieldError) as caught:
            deviations.create("manual", "")
        assert caught.value.field == "description"
        with pytest.raises(FieldError):
            deviations.create("wrong", "x")
        with pytest.raises(NotFound):
            deviations.create("manual", "x", person_hsa_id="SE2321000131-E999999999999")
        own = deviations.create("card_lost", "Tappat", issuance_id=issuance.id)
        other = deviations.create("manual", "Kort kvarglömt i receptionen",
                                  person_hsa_id=person("Cecilia").hsa_id)
        note = deviations.add_note(other.id, "Chefen kontaktad")
        assert note.author_name == "servicecenter"
        assert session.get(Deviation, other.id).status == "in_progress"
        closed = deviations.close(other.id)
        assert closed.status == "closed" and closed.closed_by_user_id is not None
        with pytest.raises(RuleViolation) as again:
            deviations.close(other.id)
        assert again.value.rule == "transition_not_allowed"
    assert own.unit_id == person("Anna").unit_id and other.unit_id == person("Cecilia").unit_id
    assert audit_actions(other.id, entity="deviation") == [
        "deviation.create", "deviation.note", "deviation.close"]
    with as_user("chef") as chef:
        assert _visible(app, chef) == ["card_lost:Anna Åkesson"]
        rows = list(deviations.report_rows(chef, {"from": "2026-03-01", "to": "2026-03-02"}))
    assert [(r["type"], r["person"], r["card_serial"]) for r in rows] == [
        ("card_lost", "Anna Åkesson", issuance.card.serial)]
    assert rows[0]["type_name"] == "Reservkort förlorat"
    with as_user("chef") as chef:
        assert list(deviations.report_rows(chef, {"from": "2026-03-03"})) == []
    with as_user("servicecenter") as user:
        assert len(_visible(app, user)) == 2
        assert len(list(deviations.report_rows(user, {"status": "closed"}))) == 1
    for who in ("televaxeln", "intygsgivare1"):
        with as_user(who) as user:
            assert _visible(app, user) == []


CSV = """hsa_id;ordinary_card;reserve_card_order
SE2321000131-E000000000004;ordered;nej
SE2321000131-E000000000010;none;ja
SE2321000131-E000000000001;active;false
"""


@pytest.mark.both_databases
def test_kobe_import_all_or_nothing(app, as_user, session):
    rows = kobe.parse_csv(CSV)
    assert [r["_row"] for r in rows] == [2, 3, 4]
    bad = rows + [{"hsa_id": "SE2321000131-E999999999999", "ordinary_card": "active",
                   "reserve_card_order": "0", "_row": 5},
                  {"hsa_id": "nonsense", "ordinary_card": "lost", "reserve_card_order": "kanske",
                   "_row": 6}]
    with as_user("servicecenter"):
        with pytest.raises(kobe.KobeImportError) as caught:
            kobe.import_rows(bad)
        errors = {(e["row"], e["field"]) for e in caught.value.errors}
        assert errors == {(5, "hsa_id"), (6, "hsa_id"), (6, "ordinary_card"),
                          (6, "reserve_card_order")}
        david = person("David").id
        record = session.execute(select(KobeRecord).where(KobeRecord.person_id == david)).scalar()
        assert record.ordinary_card == "none"
        assert kobe.import_rows(rows) == {"updated": 2}  # Anna's row is unchanged
        assert kobe.import_rows(rows) == {"updated": 0}
        kobe.set_record(person("Johan").hsa_id, "active", False)
        with pytest.raises(FieldError):
            kobe.set_record(person("Johan").hsa_id, "broken", False)
    session.expire_all()
    assert person("David").kobe.ordinary_card == "ordered"
    assert person("Johan").kobe.ordinary_card == "active"
    assert person("Johan").kobe.updated_by == "servicecenter"
    assert "kobe.import" in audit_actions(entity="kobe_register")
    with pytest.raises(FieldError) as missing:
        kobe.parse_csv("hsa_id,ordinary_card\nSE2321000131-E000000000004,active\n")
    assert missing.value.field == "file"
