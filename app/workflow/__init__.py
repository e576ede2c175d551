"""The workflow: every rule of the routine and every state change, in one place.

Views, the REST API, jobs and the CLI call these functions and nothing else re-checks a rule.
Conventions of every public step:
- It runs as one transaction: commits on success; on any error rolls back, so nothing is
  half-written, and re-raises. A refusal is `app.errors.RuleViolation` (rule code, message,
  field); a malformed value is `app.validation.FieldError`; an unknown id is `app.errors.NotFound`.
- It writes its audit row(s) (`app.audit.record`) and its e-mails (`app.outbox.queue_email`) in
  that same transaction, and reads the time from `app.clock.now()`.
- Numbers come from `current_app.config` (see config.py).
- The acting user is `flask_login.current_user` in a request, or the system in jobs/commands.

Modules and their public functions:
- stock: parse_serials(text) -> list[str]; serial_range(first, last) -> list[str];
  register_batch(serials, product_code, loa, expires_on, pickup_point_id) -> int (all or none);
  move_card(serial, pickup_point_id); mark_lost(serial, note=None); restock(serial,
  pickup_point_id=None); destroy(serial, note=None); stock_summary() -> rows per pickup point
  and status with min-stock warning; find_card(serial) -> ReserveCard.
- application (in person): check_card(serial, recipient=None) -> ReserveCard;
  find_recipient(query) -> Person (HSA-id or personal number); check_recipient(person, reason=None);
  recipient_facts(person) -> dict of what the rules need (ordinary card, Kobe orders, open reserve
  card, protected identity); max_valid_until(reason, start=None) -> date;
  check_validity(reason, valid_until, start=None) -> date;
  authenticate_attester(username, password) -> Person (attesters_too_few if the credentials fail);
  check_attesters(recipient, attester_people); apply_in_person(card_serial, recipient_hsa_id,
  reason, attester_people, recipient_present, envelope_unopened, valid_until=None,
  assignment=None) -> Issuance (status awaiting_approval).
- approval: approval_checks(issuance) -> list of dicts {key, label, register_says, required};
  approve(issuance_id, kobe_reference, checks) -> Issuance; reject(issuance_id, reason).
- lifecycle: register_receipt(issuance_id, scan_bytes=None, scan_filename=None) -> Issuance;
  find_open_issuance_by_serial(serial) -> Issuance; block(issuance_id, reason);
  extend(issuance_id, same_reason=True) -> Issuance; return_card(issuance_id, then=None)
  where then is None, "restock" or "destroy"; can_transition(status, step) -> bool and
  TRANSITIONS (step -> allowed statuses).
- mail_flow: prepare(card_serial, recipient_hsa_id, reason, address, justification,
  valid_until=None) -> Issuance (prepared); dispatched(issuance_id, registered_mail_number);
  receipt_returned(issuance_id); certificate_issued(issuance_id) -> Issuance (active).
- deviations: create(type, description, issuance_id=None, person_hsa_id=None) -> Deviation;
  add_note(deviation_id, text); close(deviation_id) (each refused with ScopeRefusal,
  `outside_managed_units`, outside the user's scope: app.access.scope);
  file_for_issuance(type, description, issuance_id) for steps that file one as their
  consequence; visible_deviations(user) -> Select (a Chef: the units they manage and below);
  report_filters(raw) -> checked filters; report_query(user, filters) -> Select of the report
  (written by app.exports); report_rows(user, filters) -> iterator of dicts.
- registers: save_person(data, person_id=None); save_unit(data, unit_id=None) (with
  manager_hsa_ids: the unit's managers, replaced, audited);
  save_pickup_point(data, pickup_point_id=None); set_attesters_required(code, n, name=None);
  each checks fields (FieldError names the field), writes its audit row, saves nothing when a
  value is wrong.
- kobe: validate_rows(rows) -> list of {row, field, message} (no saving);
  parse_csv(text) -> list[dict]; import_rows(rows) -> {"updated": n} or raises KobeImportError
  with per-row errors (nothing saved); set_record(hsa_id, ordinary_card, reserve_card_order).
- sweeps: run_all(now, trigger="schedule") -> dict name -> count; each sweep is set-based and
  idempotent.
- queries: dashboard_counts(now=None, user=None, due_soon_days=None, keys=None, extra=None) -> dict;
  approval_queue() -> Select (oldest first); receipts_due(now=None) -> Select with days left/over.
"""

from app.workflow import (  # noqa: E402  (the modules, so callers can import them from here)
    application,
    approval,
    deviations,
    kobe,
    lifecycle,
    mail_flow,
    queries,
    registers,
    stock,
    sweeps,
)
from app.workflow._tx import step, transaction  # noqa: E402
from app.workflow.kobe import KobeImportError  # noqa: E402
from app.workflow.lifecycle import TRANSITIONS, can_transition  # noqa: E402

__all__ = [
    "KobeImportError",
    "TRANSITIONS",
    "application",
    "approval",
    "can_transition",
    "deviations",
    "kobe",
    "lifecycle",
    "mail_flow",
    "queries",
    "registers",
    "step",
    "stock",
    "sweeps",
    "transaction",
]
