"""The audit chain anchored outside its table: keyed seals catch a rewrite recomputed with the
app's own hash function, checkpoints catch the newest rows cut off, audit-verify names every
break and can start at the last checkpoint, and PostgreSQL itself refuses UPDATE and DELETE."""

import json
import logging
import os
import stat

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from app import audit, create_app
from app.extensions import db
from config import TestConfig
from models import AuditEvent


def _rows():
    db.session.expire_all()
    return db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()


def _recompute_from(position, **change):
    """What someone with write access and this code base could do: change a row and rebuild
    every later hash with `audit.row_hash`, so the plain hash chain verifies again."""
    rows = _rows()
    prev = rows[position - 1].hash if position else audit.GENESIS
    for index, event in enumerate(rows[position:]):
        if index == 0:
            for key, value in change.items():
                setattr(event, key, value)
        event.prev_hash = prev
        event.hash = audit.row_hash(event)
        prev = event.hash
    db.session.commit()


def test_a_rewrite_recomputed_with_the_apps_own_function_is_caught(runner):
    rows = _rows()
    assert len(rows) >= 4
    target = rows[1].id
    _recompute_from(1, actor="mallory")
    # The plain chain is whole again: only the keyed seals (and the sealed head) tell.
    result = audit.verify()
    assert not result.ok
    assert {entry["id"] for entry in result["breaks"]} == {row.id for row in rows[1:]}
    assert {entry["reason"] for entry in result["breaks"]} == {audit.SEAL, audit.HEAD_MISMATCH}
    output = runner.invoke(args=["reservkort", "audit-verify"])
    assert output.exit_code == 1 and f"row {target}:" in output.output


def test_deleting_the_newest_rows_is_caught_by_the_checkpoint(runner, caplog, app):
    caplog.set_level(logging.INFO, logger="reservkort.audit")
    checkpoint = audit.checkpoint()
    assert checkpoint.ok and checkpoint.head_id == _rows()[-1].id
    # The checkpoint is also outside the database: in its file and in the log.
    with open(f"{app.config['INSTANCE_DIR']}/audit-checkpoints.jsonl") as handle:
        line = json.loads(handle.read().splitlines()[-1])
    assert (line["head_id"], line["mac"]) == (checkpoint.head_id, checkpoint.mac)
    assert any(checkpoint.mac in record.getMessage() for record in caplog.records)

    newest = [row.id for row in _rows()[-3:]]
    db.session.execute(delete(AuditEvent).where(AuditEvent.id.in_(newest)))
    db.session.commit()
    result = audit.verify()
    assert not result.ok
    assert {entry["reason"] for entry in result["breaks"]} == {audit.TRUNCATED, audit.MISSING}
    output = runner.invoke(args=["reservkort", "audit-verify"])
    assert output.exit_code == 1
    assert f"rows up to checkpoint {checkpoint.head_id} were removed" in output.output


def test_truncation_is_caught_even_when_the_checkpoint_table_is_emptied_too(app):
    checkpoint = audit.checkpoint()
    db.session.execute(delete(AuditEvent).where(AuditEvent.id == checkpoint.head_id))
    db.session.execute(text("DELETE FROM audit_checkpoints"))
    db.session.commit()
    result = audit.verify()  # the file outside the database (and the head) still name it
    assert {entry["reason"] for entry in result["breaks"]} == {audit.TRUNCATED, audit.MISSING}


def _cut_the_newest(count, dialect):
    """Delete the newest rows, as someone with write access to the table would (on PostgreSQL
    a superuser, who can switch the append-only trigger off)."""
    if dialect == "postgresql":
        db.session.execute(text("SET session_replication_role = replica"))
    newest = [row.id for row in _rows()[-count:]]
    db.session.execute(delete(AuditEvent).where(AuditEvent.id.in_(newest)))
    db.session.commit()
    if dialect == "postgresql":
        db.session.execute(text("SET session_replication_role = DEFAULT"))
        db.session.commit()
    return newest


@pytest.mark.both_databases
def test_rows_cut_from_the_end_after_the_newest_checkpoint_are_caught(runner, as_user, dialect):
    checkpoint = audit.checkpoint()
    assert checkpoint.ok
    with as_user("Servicecenter"):
        for number in range(3):
            audit.record("test.after_checkpoint", "test", number)
        db.session.commit()
    assert audit.verify().ok
    cut = _cut_the_newest(3, dialect)
    assert min(cut) > checkpoint.head_id  # the checkpoint's own row is still there
    result = audit.verify()
    assert not result.ok
    assert result["breaks"] == [{"id": checkpoint.head_id, "reason": audit.MISSING,
                                 "params": {"last": checkpoint.head_id, "head": max(cut)}}]
    assert not audit.verify(from_checkpoint=True).ok
    output = runner.invoke(args=["reservkort", "audit-verify"])
    assert output.exit_code == 1
    assert f"rows missing after seq {checkpoint.head_id}" in output.output
    assert f"the chain head names seq {max(cut)}" in output.output


@pytest.mark.both_databases
def test_the_head_moves_with_every_append_and_many_rows_at_once(as_user, dialect):
    from models import AuditHead

    with as_user("Servicecenter"):
        audit.record("test.one", "test", 1)
        audit.record_many([("test.many", "test", n, None, {"n": n}) for n in range(5)])
        db.session.commit()
    newest = _rows()[-1]
    head = db.session.get(AuditHead, audit.HEAD_ID)
    assert (head.seq, head.head_hash) == (newest.id, newest.hash)
    assert head.mac == audit.head_seal(newest.id, newest.hash)
    assert audit.verify().ok


def test_a_head_rewound_without_the_key_is_caught(app):
    from models import AuditHead

    rows = _rows()
    _cut_the_newest(2, "sqlite")
    head = db.session.get(AuditHead, audit.HEAD_ID)
    head.seq, head.head_hash = rows[-3].id, rows[-3].hash  # the seal cannot follow
    db.session.commit()
    reasons = {entry["reason"] for entry in audit.verify()["breaks"]}
    assert reasons == {audit.HEAD_FORGED}


@pytest.mark.postgresql_only
def test_postgresql_refuses_to_delete_the_head_or_move_it_back(app, dialect):
    from models import AuditHead

    with pytest.raises(DBAPIError, match="only moves forward"):
        db.session.execute(update(AuditHead).values(seq=AuditHead.seq - 1))
    db.session.rollback()
    with pytest.raises(DBAPIError, match="only moves forward"):
        db.session.execute(delete(AuditHead))
    db.session.rollback()
    assert audit.verify().ok


def test_audit_verify_reports_every_break(runner):
    rows = _rows()
    first, second = rows[1].id, rows[3].id
    for target in (first, second):
        db.session.execute(update(AuditEvent).where(AuditEvent.id == target)
                           .values(actor="mallory"))
    db.session.commit()
    output = runner.invoke(args=["reservkort", "audit-verify"])
    assert output.exit_code == 1
    assert f"row {first}: the row was altered" in output.output
    assert f"row {second}: the row was altered" in output.output
    assert "2 break(s) found." in output.output


def test_audit_verify_can_start_at_the_last_checkpoint(runner, as_user):
    total = len(_rows())
    runner.invoke(args=["reservkort", "audit-verify", "--checkpoint"])
    audit.record("test.after_checkpoint", "test", 1)
    db.session.commit()
    result = audit.verify(from_checkpoint=True)
    assert result.ok and result["rows_checked"] == 1
    assert audit.verify()["rows_checked"] == total + 1
    output = runner.invoke(args=["reservkort", "audit-verify", "--from-checkpoint"])
    assert output.exit_code == 0 and "(1 rows checked)" in output.output


def test_the_seal_key_is_made_on_first_start_outside_the_database(tmp_path, database_url):
    instance = tmp_path / "instance"
    flask_app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url,
                           INSTANCE_DIR=str(instance), MAIL_DIR=str(instance / "mail"),
                           UPLOAD_DIR=str(instance / "uploads"), AUDIT_HMAC_KEY="",
                           FAB_UPDATE_PERMS=False)
    key_file = instance / "audit-hmac.key"
    assert key_file.exists() and len(key_file.read_text().strip()) == 64
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert flask_app.config["AUDIT_HMAC_KEY"] == key_file.read_text().strip()
    again = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url,
                       INSTANCE_DIR=str(instance), MAIL_DIR=str(instance / "mail"),
                       UPLOAD_DIR=str(instance / "uploads"), AUDIT_HMAC_KEY="",
                       FAB_UPDATE_PERMS=False)
    assert again.config["AUDIT_HMAC_KEY"] == flask_app.config["AUDIT_HMAC_KEY"]


@pytest.mark.postgresql_only
def test_postgresql_refuses_update_and_delete_of_audit_rows(app, dialect):
    target = db.session.execute(select(func.min(AuditEvent.id))).scalar()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(update(AuditEvent).where(AuditEvent.id == target)
                           .values(actor="mallory"))
    db.session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(delete(AuditEvent).where(AuditEvent.id == target))
    db.session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text("TRUNCATE audit_events"))
    db.session.rollback()
    assert db.session.get(AuditEvent, target).actor != "mallory"
