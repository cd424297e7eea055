"""response incidents units drones (reserved: filled by the issue that needs it)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa  # noqa: F401 - used once the migration has content
from alembic import op  # noqa: F401

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
