"""the card's whole life: lost issuances, "out" until returned or lost, ordinary card since

Revision ID: 0004_lifecycle
Revises: 0001
Create Date: 2026-12-01 22:15:00

- Issuance status `lost`, and who reported the card lost and when the certificate was asked to
  be blocked (and by whom).
- `issued_at` / `valid_until` stay empty for a registered-mail card until its certificate is
  issued (they were already nullable).
- The partial unique indexes that enforce "one card out per person / per card" follow the new
  meaning of "out":
  * uq_issuances_open_recipient serves `recipient_has_open_issuance` (the lookup of a person's
    open issuance in application.check_recipient): a person holds a card until it is returned
    or lost, also when it is blocked, expired or rejected; a mail card still at Servicecenter
    (`prepared`) is not out with the person.
  * uq_issuances_open_card serves the lookup of the issuance a card is out on
    (lifecycle.find_open_issuance_by_serial, stock.mark_lost): one issuance per card until it is
    returned or lost.
- kobe_register.ordinary_card_since: when the ordinary card last changed value;
  ix_kobe_register_ordinary_card_since serves the return-request sweep (ordinary card active
  since the issuance was created).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_lifecycle'
down_revision = '0003_signin'
branch_labels = None
depends_on = None

OLD_STATUSES = ('awaiting_approval', 'approved', 'extended', 'expired', 'prepared', 'sent',
                'receipt_received', 'active', 'rejected', 'blocked', 'returned')
NEW_STATUSES = OLD_STATUSES + ('lost',)


def _in(values):
    return ", ".join(f"'{v}'" for v in values)


def _open_indexes(person_closed, card_closed):
    with op.batch_alter_table('issuances', schema=None) as batch_op:
        batch_op.create_index(
            'uq_issuances_open_card', ['card_id'], unique=True,
            postgresql_where=sa.text(f"status NOT IN ({_in(card_closed)})"),
            sqlite_where=sa.text(f"status NOT IN ({_in(card_closed)})"))
        batch_op.create_index(
            'uq_issuances_open_recipient', ['recipient_id'], unique=True,
            postgresql_where=sa.text(f"status NOT IN ({_in(person_closed)})"),
            sqlite_where=sa.text(f"status NOT IN ({_in(person_closed)})"))


def _drop_open_indexes():
    with op.batch_alter_table('issuances', schema=None) as batch_op:
        batch_op.drop_index('uq_issuances_open_card')
        batch_op.drop_index('uq_issuances_open_recipient')


def upgrade():
    _drop_open_indexes()
    with op.batch_alter_table('issuances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lost_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('lost_by_user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lost_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('certificate_block_requested_at', sa.DateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('certificate_block_requested_by_user_id', sa.Integer(),
                                      nullable=True))
        batch_op.create_foreign_key('fk_issuances_lost_by_user_id', 'ab_user',
                                    ['lost_by_user_id'], ['id'])
        batch_op.create_foreign_key('fk_issuances_certificate_block_requested_by_user_id',
                                    'ab_user', ['certificate_block_requested_by_user_id'], ['id'])
        batch_op.drop_constraint('ck_issuances_status', type_='check')
        batch_op.create_check_constraint('ck_issuances_status',
                                         sa.text(f"status IN ({_in(NEW_STATUSES)})"))
    _open_indexes(('returned', 'lost', 'prepared'), ('returned', 'lost'))
    with op.batch_alter_table('kobe_register', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordinary_card_since', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_kobe_register_ordinary_card_since', ['ordinary_card_since'],
                              unique=False)
    op.execute("UPDATE kobe_register SET ordinary_card_since = updated_at")


def downgrade():
    with op.batch_alter_table('kobe_register', schema=None) as batch_op:
        batch_op.drop_index('ix_kobe_register_ordinary_card_since')
        batch_op.drop_column('ordinary_card_since')
    _drop_open_indexes()
    op.execute("UPDATE issuances SET status = 'returned' WHERE status = 'lost'")
    with op.batch_alter_table('issuances', schema=None) as batch_op:
        batch_op.drop_constraint('ck_issuances_status', type_='check')
        batch_op.create_check_constraint('ck_issuances_status',
                                         sa.text(f"status IN ({_in(OLD_STATUSES)})"))
        batch_op.drop_constraint('fk_issuances_certificate_block_requested_by_user_id',
                                 type_='foreignkey')
        batch_op.drop_constraint('fk_issuances_lost_by_user_id', type_='foreignkey')
        for column in ('certificate_block_requested_by_user_id', 'certificate_block_requested_at',
                       'lost_note', 'lost_by_user_id', 'lost_at'):
            batch_op.drop_column(column)
    _open_indexes(('returned', 'rejected', 'blocked'), ('returned',))
