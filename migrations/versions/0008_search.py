"""the lists' search box: names by trigram on PostgreSQL, deviations by card serial

Every index names the query it serves (app.search):
- `ix_people_name_trgm` (PostgreSQL only, GIN with pg_trgm): the search box's name match,
  `people.name ILIKE '%word%'` for each typed word (at least one of three letters), on the
  people list and inside the issuance, deviation and Kobe-register lists'
  `person_id IN (SELECT id FROM people WHERE ...)`. SQLite, the embedded database, has no
  trigram index: the same condition scans its small register.
- `ix_deviations_card_serial`: the deviation list's box with a card serial,
  `deviations.card_serial = :serial`.
HSA-id, personal identity number and card serial are exact matches on their unique indexes.

Revision ID: 0008_search
Revises: 0006_scale
Create Date: 2026-12-02 07:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008_search'
down_revision = '0006_scale'
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.create_index("ix_deviations_card_serial", "deviations", ["card_serial"])
    if _postgresql():
        # pg_trgm ships with PostgreSQL and is a trusted extension (PostgreSQL 13+): the
        # database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index("ix_people_name_trgm", "people", [sa.text("name gin_trgm_ops")],
                        postgresql_using="gin")


def downgrade():
    if _postgresql():
        op.drop_index("ix_people_name_trgm", table_name="people")
    op.drop_index("ix_deviations_card_serial", table_name="deviations")
