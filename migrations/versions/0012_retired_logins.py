"""retired logins: whose a deleted login account was, so what it did stays masked

A login's audit rows name it by its id and username, and some columns (who last updated a Kobe
row) by its username alone. The access policy masks them for a protected person's login by
the login's link to its person; a deleted login had lost that link (account_links goes with
it), and its username was shown. The database now keeps the deleted login's id, username and
person, written by a trigger before the login is deleted, so no code path can forget it. No
index beyond the primary key: the table holds the few deleted logins, read whole with the
protected people (app.access: protected_logins, protected_usernames, the protected people's
strings); a person's removal removes their rows with them.

Revision ID: 0012_retired_logins
Revises: 0011_protected_generation
Create Date: 2026-12-04 20:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0012_retired_logins'
down_revision = '0011_protected_generation'
branch_labels = None
depends_on = None

RETIRE = """
    INSERT INTO retired_logins (user_id, username, person_id, retired_at)
    SELECT OLD.id, OLD.username, account_links.person_id, {now}
    FROM account_links WHERE account_links.user_id = OLD.id
"""


def upgrade():
    op.create_table(
        'retired_logins',
        sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('username', sa.String(length=128), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('retired_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id'),
    )
    # Before the delete: the login's link to its person is still there.
    if op.get_bind().dialect.name == 'postgresql':
        retire = RETIRE.format(now="(now() AT TIME ZONE 'UTC')")
        op.execute(f"""
            CREATE FUNCTION login_retired() RETURNS trigger AS $$
            BEGIN
                {retire} ON CONFLICT (user_id) DO NOTHING;
                RETURN OLD;
            END $$ LANGUAGE plpgsql""")
        op.execute("CREATE TRIGGER logins_retired BEFORE DELETE ON ab_user FOR EACH ROW "
                   "EXECUTE FUNCTION login_retired()")
    else:
        retire = RETIRE.format(now="CURRENT_TIMESTAMP").replace("INSERT INTO",
                                                                "INSERT OR IGNORE INTO")
        op.execute(f"CREATE TRIGGER logins_retired BEFORE DELETE ON ab_user BEGIN {retire}; END")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS logins_retired ON ab_user")
        op.execute("DROP FUNCTION IF EXISTS login_retired()")
    else:
        op.execute("DROP TRIGGER IF EXISTS logins_retired")
    op.drop_table('retired_logins')
