"""The system's own register of what it needs from Kobe, fed by import and kept by hand."""

import csv
import io

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import clock
from app.errors import NotFound
from app.extensions import db
from app.validation import FieldError
from app.validation import hsa_id as valid_hsa_id
from app.workflow._common import actor, record
from app.workflow._tx import step
from models import ORDINARY_CARD_STATES, KobeRecord, Person

COLUMNS = ("hsa_id", "ordinary_card", "reserve_card_order")
_TRUE = {"1", "true", "yes", "ja", "j", "y", "x"}
_FALSE = {"0", "false", "no", "nej", "n", ""}


class KobeImportError(ValueError):
    """Nothing was saved; `errors` lists each bad row as {row, field, message}."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(f"{len(errors)} rows refused")

    def as_dict(self) -> dict:
        return {"message": str(_l("The import was refused; nothing was saved.")),
                "errors": self.errors}


def parse_csv(text) -> list[dict]:
    """Rows of a CSV with the columns hsa_id, ordinary_card, reserve_card_order (comma or
    semicolon separated). Each row remembers its line number for error messages."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FieldError("file", _l("The file is not UTF-8 text.")) from exc
    text = str(text or "").lstrip("\ufeff")
    if not text.strip():
        raise FieldError("file", _l("The file is empty."))
    dialect = csv.excel
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        pass
    try:
        return _csv_rows(csv.DictReader(io.StringIO(text, newline=""), dialect=dialect))
    except csv.Error as exc:
        raise FieldError("file", _l("Not a readable CSV file.")) from exc


def _csv_rows(reader) -> list[dict]:
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise FieldError("file", _l("Missing columns: %(columns)s")
                         % {"columns": ", ".join(missing)})
    reader.fieldnames = header
    rows = []
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        rows.append({**{c: (row.get(c) or "").strip() for c in COLUMNS},
                     "_row": reader.line_num})
    return rows


def _flag(value):
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _validate(index, row, people) -> tuple[dict | None, list[dict]]:
    number = row.get("_row", index)
    errors = []

    def error(field, message):
        errors.append({"row": number, "field": field, "message": str(message)})

    try:
        hsa = valid_hsa_id(row.get("hsa_id"))
    except FieldError as exc:
        error("hsa_id", exc.message)
        hsa = None
    if hsa and hsa not in people:
        error("hsa_id", _l("No person with HSA-id %(hsa_id)s.") % {"hsa_id": hsa})
    ordinary = str(row.get("ordinary_card") or "").strip().lower()
    if ordinary not in ORDINARY_CARD_STATES:
        error("ordinary_card", _l("Ordinary card is active, ordered or none."))
    try:
        order = _flag(row.get("reserve_card_order"))
    except ValueError:
        error("reserve_card_order", _l("Reserve-card order is true or false."))
        order = None
    if errors:
        return None, errors
    return {"person_id": people[hsa], "hsa_id": hsa, "ordinary_card": ordinary,
            "reserve_card_order": order}, []


def _checked(rows) -> tuple[list[dict], list[dict]]:
    """(the rows' values ready to save, every error as {row, field, message})."""
    hsa_ids = {str(r.get("hsa_id") or "").strip().upper() for r in rows}
    people = dict(db.session.execute(
        select(Person.hsa_id, Person.id).where(Person.hsa_id.in_(hsa_ids))
    ).all()) if hsa_ids else {}
    valid, errors = [], []
    for index, row in enumerate(rows, start=1):
        values, row_errors = _validate(index, row, people)
        errors.extend(row_errors)
        if values:
            valid.append(values)
    return valid, errors


def validate_rows(rows) -> list[dict]:
    """Every error of the rows as {row, field, message}, saving nothing (the import preview)."""
    return _checked(list(rows or []))[1]


@step
def import_rows(rows) -> dict:
    """Update the register from rows; every row is valid or nothing is saved."""
    valid, errors = _checked(list(rows or []))
    if errors:
        raise KobeImportError(errors)
    changed = _apply(valid)
    if changed:
        record("kobe.import", "kobe_register", None, None, {"rows": len(valid),
                                                            "changes": changed})
    return {"updated": len(changed)}


def _apply(valid) -> list[dict]:
    """Write the rows that differ from the register; return what changed."""
    existing = {
        r.person_id: r for r in db.session.execute(
            select(KobeRecord).where(KobeRecord.person_id.in_([v["person_id"] for v in valid]))
        ).scalars()
    }
    now, by = clock.now(), actor()[1]
    changed = []
    for values in valid:
        record_ = existing.get(values["person_id"])
        old = (record_.ordinary_card, record_.reserve_card_order) if record_ else None
        new = (values["ordinary_card"], values["reserve_card_order"])
        if old == new:
            continue
        if record_ is None:
            record_ = KobeRecord(person_id=values["person_id"])
            db.session.add(record_)
            existing[values["person_id"]] = record_
        if old is None or old[0] != new[0]:
            record_.ordinary_card_since = now
        record_.ordinary_card, record_.reserve_card_order = new
        record_.updated_at, record_.updated_by = now, by
        changed.append({"hsa_id": values["hsa_id"], "before": list(old) if old else None,
                        "after": list(new)})
    return changed


@step
def set_record(hsa_id, ordinary_card, reserve_card_order) -> KobeRecord:
    """Record what the person who checked Kobe saw."""
    hsa = valid_hsa_id(hsa_id)
    person_id = db.session.execute(select(Person.id).where(Person.hsa_id == hsa)).scalar()
    if person_id is None:
        raise NotFound("person", hsa)
    values, errors = _validate(1, {"hsa_id": hsa, "ordinary_card": ordinary_card,
                                   "reserve_card_order": reserve_card_order}, {hsa: person_id})
    if errors:
        raise FieldError(errors[0]["field"], errors[0]["message"])
    changed = _apply([values])
    db.session.flush()
    if changed:
        record("kobe.set", "kobe_register", person_id,
               {"hsa_id": hsa, "ordinary_card_reserve_order": changed[0]["before"]},
               {"hsa_id": hsa, "ordinary_card_reserve_order": changed[0]["after"]})
    return db.session.execute(
        select(KobeRecord).where(KobeRecord.person_id == person_id)
    ).scalar_one()
