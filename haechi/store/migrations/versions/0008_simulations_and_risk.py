"""simulations and risk (reserved: filled by the issue that needs it)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa  # noqa: F401 - used once the migration has content
from alembic import op  # noqa: F401

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
