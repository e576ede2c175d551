"""national scale: indexes for the list pages, the counts and the sweeps; drop unused ones

Every index below names the query it serves. The partial ones hold only open rows (a few per
cent of the table at national scale), so the start page and the sweeps read those rows only.
Their predicates are written exactly as the queries write their conditions
(`status NOT IN (...)`), so that PostgreSQL (and SQLite) can use them.

Revision ID: 0006_scale
Revises: 0007_ops
Create Date: 2026-12-01 22:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006_scale'
down_revision = '0007_ops'
branch_labels = None
depends_on = None

# As models.CLOSED_FOR_PERSON / CLOSED_FOR_CARD (migration 0004_lifecycle: a card is out until
# it is returned or reported lost; a prepared envelope is not out with the person).
OPEN = sa.text("status NOT IN ('returned', 'lost', 'prepared')")
NOT_RETURNED = sa.text("status NOT IN ('returned', 'lost')")
PENDING_RECEIPT = sa.text("received_at IS NULL")
OPEN_DEVIATION = sa.text("status <> 'closed'")

# (table, name, columns, options): the new indexes, each with the query it serves.
NEW = (
    # Issuance list screen (IssuanceView): ORDER BY created_at DESC, id DESC, the page's ids
    # read from this index (page 1 and deep pages alike).
    ("issuances", "ix_issuances_created_id", [sa.text("created_at DESC"), sa.text("id DESC")],
     {}),
    # Issuance API list filtered on status, newest id first and keyset `after=`:
    # WHERE status = :s AND id < :after ORDER BY id DESC LIMIT n.
    ("issuances", "ix_issuances_status_id", ["status", "id"], {}),
    # Start page (queries.dashboard_counts) and the sweeps on open issuances (receipts to
    # block and remind, expiry reminders, expiry, return requests): only open rows, with every
    # column the counters read (id too), so the count is an index-only scan.
    ("issuances", "ix_issuances_open",
     ["status", "channel", "receipt_due", "valid_until", "id"],
     {"postgresql_where": OPEN, "sqlite_where": OPEN}),
    # Sweep report_not_returned: WHERE status NOT IN ('returned') AND valid_until < :day.
    ("issuances", "ix_issuances_not_returned_valid_until", ["valid_until"],
     {"postgresql_where": NOT_RETURNED, "sqlite_where": NOT_RETURNED}),
    # Start page and sweeps: receipts not yet registered (receipt_open / _receipt_missing).
    ("receipts", "ix_receipts_pending", ["issuance_id", "due_on"],
     {"postgresql_where": PENDING_RECEIPT, "sqlite_where": PENDING_RECEIPT}),
    # Deviation list (screen and API): ORDER BY created_at DESC, id DESC.
    ("deviations", "ix_deviations_created_id", [sa.text("created_at DESC"), sa.text("id DESC")],
     {}),
    # Start page: open deviations, all or of a manager's units (unit_id IN (...)).
    ("deviations", "ix_deviations_open_unit", ["unit_id"],
     {"postgresql_where": OPEN_DEVIATION, "sqlite_where": OPEN_DEVIATION}),
    # People list (PersonView, PersonApi): ORDER BY name, id.
    ("people", "ix_people_name_id", ["name", "id"], {}),
)

# (table, name, columns): indexes no query uses, or that a new one above covers.
DROPPED = (
    ("issuances", "ix_issuances_created_at", ["created_at"]),        # ix_issuances_created_id
    ("issuances", "ix_issuances_status", ["status"]),                # ix_issuances_status_id
    ("issuances", "ix_issuances_channel", ["channel"]),              # two values: never chosen
    ("issuances", "ix_issuances_reason", ["reason"]),                # four values: never chosen
    ("issuances", "ix_issuances_issued_at", ["issued_at"]),          # no query filters on it
    ("issuances", "ix_issuances_blocked_at", ["blocked_at"]),        # no query filters on it
    ("issuances", "ix_issuances_returned_at", ["returned_at"]),      # no query filters on it
    ("issuances", "ix_issuances_dispatched_at", ["dispatched_at"]),  # no query filters on it
    ("issuances", "ix_issuances_return_requested_at", ["return_requested_at"]),  # likewise
    ("receipts", "ix_receipts_received_at", ["received_at"]),        # ix_receipts_pending
    ("deviations", "ix_deviations_created_at", ["created_at"]),      # ix_deviations_created_id
    ("deviations", "ix_deviations_status", ["status"]),              # ix_deviations_open_unit
    ("deviations", "ix_deviations_unit_id", ["unit_id"]),            # ix_deviations_unit_created
    ("deviations", "ix_deviations_type", ["type"]),                  # five values: never chosen
    ("people", "ix_people_name", ["name"]),                          # ix_people_name_id
)


def upgrade():
    for table, name, _columns in DROPPED:
        op.drop_index(name, table_name=table)
    for table, name, columns, options in NEW:
        op.create_index(name, table, columns, unique=False, **options)


def downgrade():
    for table, name, _columns, _options in reversed(NEW):
        op.drop_index(name, table_name=table)
    for table, name, columns in reversed(DROPPED):
        op.create_index(name, table, columns, unique=False)
