"""protected generation: a token that changes whenever what identifies a protected person does

The access policy redacts free text with every protected person's strings. Reading them (a
thousand rows at national scale) on every request cost more than the page itself; they are now
kept in each process and read again only when this token has changed. Triggers change it on
every insert, update of the identifying columns or delete of a protected person, every change
of a login link, and every change of a username, so no code path can forget it. A random token,
not a counter: a database restored to an earlier state never shows a value that a process has
seen with other rows. No index beyond the primary key: the token is read by its id (1).

Revision ID: 0011_protected_generation
Revises: 0010_audit_head
Create Date: 2026-12-02 22:00:00

"""
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0011_protected_generation'
down_revision = '0010_audit_head'
branch_labels = None
depends_on = None

IDENTIFYING = "protected_identity, name, personal_number, email"
# (trigger, event and table, condition): the changes that make the token change.
TRIGGERS = (
    ("people_protected_added", "INSERT ON people", "NEW.protected_identity"),
    ("people_protected_changed", f"UPDATE OF {IDENTIFYING} ON people",
     "OLD.protected_identity OR NEW.protected_identity"),
    ("people_protected_removed", "DELETE ON people", "OLD.protected_identity"),
    ("account_links_added", "INSERT ON account_links", None),
    ("account_links_changed", "UPDATE ON account_links", None),
    ("account_links_removed", "DELETE ON account_links", None),
    ("logins_renamed", "UPDATE OF username ON ab_user", None),
    ("logins_removed", "DELETE ON ab_user", None),
)
PG_TOKEN = "md5(random()::text || clock_timestamp()::text)"
SQLITE_TOKEN = "lower(hex(randomblob(16)))"


def upgrade():
    table = op.create_table(
        'protected_generation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(table, [{"id": 1, "token": uuid.uuid4().hex}])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""
            CREATE FUNCTION protected_generation_changed() RETURNS trigger AS $$
            BEGIN
                UPDATE protected_generation SET token = {PG_TOKEN} WHERE id = 1;
                RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        for name, on, condition in TRIGGERS:
            when = f" WHEN ({condition})" if condition else ""
            op.execute(f"CREATE TRIGGER {name} AFTER {on} FOR EACH ROW{when} "
                       "EXECUTE FUNCTION protected_generation_changed()")
    else:
        for name, on, condition in TRIGGERS:
            when = f" WHEN {condition}" if condition else ""
            op.execute(f"CREATE TRIGGER {name} AFTER {on}{when} BEGIN UPDATE "
                       f"protected_generation SET token = {SQLITE_TOKEN} WHERE id = 1; END")


def downgrade():
    postgresql = op.get_bind().dialect.name == 'postgresql'
    for name, on, _condition in TRIGGERS:
        table = on.rsplit(" ", 1)[1]
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS protected_generation_changed()")
    op.drop_table('protected_generation')
