"""audit chain head: the newest row's id and hash, sealed with the key outside the database

One row, updated in the same transaction as every append, so rows cut from the end of the log
leave a head that names more rows than are left. No index beyond the primary key: every append
reads and writes the head by its id (1). On PostgreSQL a trigger refuses to delete the head or
to move it backwards.

Revision ID: 0010_audit_head
Revises: 0009_scale2
Create Date: 2026-12-02 07:00:00

"""
import hashlib
import hmac

import sqlalchemy as sa
from alembic import op

revision = '0010_audit_head'
down_revision = '0009_scale2'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _seal(seq, head_hash):
    """As app.audit.head_seal, with the app's key when the migration runs in the app
    (flask db upgrade, reservkort deploy); unsealed otherwise, which audit-verify reports."""
    try:
        from flask import current_app

        key = current_app.config.get("AUDIT_HMAC_KEY")
    except RuntimeError:
        key = None
    if not key:
        return None
    return hmac.new(key.encode("utf-8"), f"head:{seq}:{head_hash}".encode(),
                    hashlib.sha256).hexdigest()


def upgrade():
    head = op.create_table(
        'audit_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('head_hash', sa.String(length=64), nullable=False),
        sa.Column('mac', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    last = op.get_bind().execute(sa.text(
        "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")).first()
    seq, head_hash = (last[0], last[1]) if last else (0, GENESIS)
    op.bulk_insert(head, [{"id": 1, "seq": seq, "head_hash": head_hash,
                           "mac": _seal(seq, head_hash)}])

    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION audit_head_forward_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    IF NEW.seq >= OLD.seq AND NEW.id = OLD.id THEN
                        RETURN NEW;
                    END IF;
                END IF;
                RAISE EXCEPTION 'audit_head only moves forward (% refused)', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER audit_head_forward_only
            BEFORE UPDATE OR DELETE ON audit_head
            FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()
        """)
        op.execute("""
            CREATE TRIGGER audit_head_no_truncate
            BEFORE TRUNCATE ON audit_head
            FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only()
        """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS audit_head_forward_only()")
    op.drop_table('audit_head')
