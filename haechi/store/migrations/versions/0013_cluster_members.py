"""the cluster: which processes run, in which roles, which engine leads, how far behind

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_members",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("roles", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False),
        sa.Column("lag", sa.BigInteger(), nullable=True),
        sa.Column("consumers", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cluster_members")),
    )


def downgrade() -> None:
    op.drop_table("cluster_members")
