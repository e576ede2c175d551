"""One notion of manager: a unit's managers (unit_managers). people.manager_id goes away.

What could be kept is kept: a person's former manager becomes a manager of that person's unit
(when the person has a unit). Deviations already record the unit the person was in when the
deviation arose (deviations.unit_id), so e-mails and scope follow the unit's managers.

The same revision adds export_jobs: a big export built by a job, with its progress and file.

Indexes: ix_export_jobs_user_id serves "this login's export jobs" (the owner check when the
status or the file is asked for) and the cascade when a login is deleted. Otherwise none new. The queries of the scope are served by what exists:
- the units a manager manages: ix_unit_managers_person_id (unit_managers.person_id);
- the managers of a unit (e-mails, the unit's answers): the primary key (unit_id, person_id);
- the walk down the unit tree (recursive CTE of app.access.scope): ix_units_parent_id;
- a manager's deviations: ix_deviations_unit_created (unit_id, created_at).
ix_people_manager_id goes with its column.

Revision ID: 0002_unit_managers
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_unit_managers"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("layout", sa.String(length=16), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("file_path", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_export_jobs_user_id"), ["user_id"], unique=False)
    op.execute(sa.text(
        "INSERT INTO unit_managers (unit_id, person_id) "
        "SELECT DISTINCT p.unit_id, p.manager_id FROM people p "
        "WHERE p.manager_id IS NOT NULL AND p.unit_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM unit_managers m "
        "WHERE m.unit_id = p.unit_id AND m.person_id = p.manager_id)"
    ))
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_manager_id"))
        batch_op.drop_column("manager_id")


def downgrade():
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_export_jobs_user_id"))
    op.drop_table("export_jobs")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manager_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_people_manager_id", "people", ["manager_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_people_manager_id"), ["manager_id"], unique=False)
    # Back to one manager per person: the first manager of the person's unit.
    op.execute(sa.text(
        "UPDATE people SET manager_id = (SELECT MIN(m.person_id) FROM unit_managers m "
        "WHERE m.unit_id = people.unit_id AND m.person_id <> people.id)"
    ))
