"""sign-in defences and sessions: failed sign-ins, locked accounts, session generations

Revision ID: 0003_signin
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_signin'
down_revision = '0002_unit_managers'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'signin_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=256), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    # Serves "failures of this account within the window" (the lock) and the delete of an
    # account's failures at success or unlock.
    op.create_index('ix_signin_failures_username_at', 'signin_failures', ['username', 'at'])
    # Serves "failures from this client address within the window" (the address limit).
    op.create_index('ix_signin_failures_address_at', 'signin_failures', ['address', 'at'])
    # Serves the clean-up of failures older than the window.
    op.create_index('ix_signin_failures_at', 'signin_failures', ['at'])
    op.create_table(
        'signin_locks',
        sa.Column('username', sa.String(length=256), nullable=False),
        sa.Column('locked_at', sa.DateTime(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('username'),  # the primary key serves the per-sign-in lookup
    )
    op.create_table(
        'session_generations',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('changed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
        # The primary key serves the per-request check of a session's or token's generation.
        sa.PrimaryKeyConstraint('user_id'),
    )


def downgrade():
    op.drop_table('session_generations')
    op.drop_table('signin_locks')
    op.drop_index('ix_signin_failures_at', table_name='signin_failures')
    op.drop_index('ix_signin_failures_address_at', table_name='signin_failures')
    op.drop_index('ix_signin_failures_username_at', table_name='signin_failures')
    op.drop_table('signin_failures')
