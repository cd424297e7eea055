"""warehouse and open data: the Parquet lake's export watermarks

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lake_watermarks",
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_exported", sa.BigInteger(), nullable=False),
        sa.Column("files_written", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", name=op.f("pk_lake_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("lake_watermarks")
