"""imports: the record of each import run (issue 7)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "import_runs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("encoding", sa.String(16)),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rows_accepted", sa.BigInteger, nullable=False),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False),
        sa.Column("rows_duplicate", sa.BigInteger, nullable=False),
        sa.Column("observations_stored", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f("ck_import_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_index("ix_import_runs_kind", "import_runs", ["kind"])
    op.create_index("ix_import_runs_started_at", "import_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_import_runs_started_at", table_name="import_runs")
    op.drop_index("ix_import_runs_kind", table_name="import_runs")
    op.drop_table("import_runs")
