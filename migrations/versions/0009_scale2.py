"""national scale, second pass: the protected people, the people list's shown order; drop two
indexes no query uses

Every index below names the query it serves.

Revision ID: 0009_scale2
Revises: 0008_search
Create Date: 2026-12-02 07:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0009_scale2'
down_revision = '0008_search'
branch_labels = None
depends_on = None

PROTECTED = sa.text("protected_identity IS true")
SEALED = sa.text("status = 'in_stock'")
# The people list's order for a login without clearance (access.filters.masked_order): a
# protected person sorts as the mask. Written as PostgreSQL parses the query's CASE (the mask
# in the default language, Swedish), so the list's page is read from this index in order; in
# another language the list is sorted without it, as before.
SHOWN_NAME = sa.text(
    "(CASE WHEN protected_identity IS true THEN 'Skyddad identitet'::varchar ELSE name END)")

# (table, name, columns, options): the new indexes, each with the query it serves.
NEW = (
    # The approval queue (queries.approval_queue: WHERE status = 'awaiting_approval' ORDER BY
    # created_at, id) and the issuance list screen filtered on a status (WHERE status = :s
    # ORDER BY created_at DESC, id DESC, read backwards): the page's ids are an index-only
    # scan in the list's order, page 1 and deep pages. Replaces ix_issuances_status_created,
    # which lacked the id tie-breaker (a sort of every row of the status).
    ("issuances", "ix_issuances_status_created_id", ["status", "created_at", "id"], {}),
    # The deviation list (screen and API) filtered on one unit: WHERE unit_id = :u ORDER BY
    # created_at DESC, id DESC, read backwards in order. Replaces ix_deviations_unit_created
    # (no id: the unit's rows were all read and sorted).
    ("deviations", "ix_deviations_unit_created_id", ["unit_id", "created_at", "id"], {}),
    # access.protected_identities: WHERE protected_identity IS true, read for every e-mail
    # batch (the sweeps), every redacted screen and every e-mail sent; a few rows of people.
    ("people", "ix_people_protected", ["id"],
     {"postgresql_where": PROTECTED, "sqlite_where": PROTECTED}),
    # The start page's "in stock" count (queries.dashboard_counts, stock.lendable_today:
    # status = 'in_stock' AND loa = 'LOA2' AND expires_on >= today AND bound_person_id IS
    # NULL): an index-only range scan of the sealed unbound cards, the rest unread.
    ("reserve_cards", "ix_reserve_cards_lendable", ["bound_person_id", "expires_on"],
     {"postgresql_where": SEALED, "sqlite_where": SEALED, "postgresql_include": ["loa"]}),
)

# (table, name, columns): indexes no query uses.
DROPPED = (
    ("issuances", "ix_issuances_status_created", ["status", "created_at"]),  # see above
    ("deviations", "ix_deviations_unit_created", ["unit_id", "created_at"]),  # see above
    # Three states (active, ordered, none): never chosen; the return-request sweep reads
    # the Kobe row by person_id (kobe_register_person_id_key).
    ("kobe_register", "ix_kobe_register_ordinary_card", ["ordinary_card"]),
    # A handful of products; no query filters on it but the card API's search, which a
    # handful of values would not make selective.
    ("reserve_cards", "ix_reserve_cards_product_code", ["product_code"]),
)


def upgrade():
    for table, name, _columns in DROPPED:
        op.drop_index(name, table_name=table)
    for table, name, columns, options in NEW:
        op.create_index(name, table, columns, unique=False, **options)
    if op.get_bind().dialect.name == "postgresql":
        # The people list (PersonView, page 1 and deep pages): ORDER BY the shown name, id.
        # The name and the flag are included so the page's ids are an index-only scan.
        op.execute(f"CREATE INDEX ix_people_shown_name_id ON people ({SHOWN_NAME}, id) "
                   "INCLUDE (name, protected_identity)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_people_shown_name_id")
    for table, name, _columns, _options in reversed(NEW):
        op.drop_index(name, table_name=table)
    for table, name, columns in reversed(DROPPED):
        op.create_index(name, table, columns, unique=False)
