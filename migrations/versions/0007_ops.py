"""operations: outbox claim owner and per-recipient results, keyed audit seals and checkpoints,
append-only audit rows on PostgreSQL

Revision ID: 0007_ops
Revises: 0001
Create Date: 2026-12-01 22:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007_ops'
down_revision = '0004_lifecycle'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        # The dispatcher that holds a `sending` row; only it may mark the row sent.
        batch_op.add_column(sa.Column('claim_token', sa.String(length=36), nullable=True))
        # {address: {"status": "sent"|"refused"|"failed", "code": int, "error": str}}
        batch_op.add_column(sa.Column('recipient_results', sa.JSON(), nullable=True))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        # HMAC of the row hash with a key kept outside the database.
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))

    op.create_table(
        'audit_checkpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('head_id', sa.Integer(), nullable=True),
        sa.Column('head_hash', sa.String(length=64), nullable=True),
        sa.Column('mac', sa.String(length=64), nullable=True),
        sa.Column('rows_checked', sa.Integer(), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('breaks', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    # No index beyond the primary key: the audit screen and audit-verify read the newest
    # checkpoint (ORDER BY id DESC LIMIT 1), which the primary key serves.

    if op.get_bind().dialect.name == 'postgresql':
        # The audit log is append-only for everyone, the application's role included.
        op.execute("""
            CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER audit_events_no_update_delete
            BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
        """)
        op.execute("""
            CREATE TRIGGER audit_events_no_truncate
            BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
        """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    op.drop_table('audit_checkpoints')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('mac')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('recipient_results')
        batch_op.drop_column('claim_token')
