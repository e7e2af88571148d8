"""record the code snapshot each version runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("code_snapshot", sa.String(), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("code_info", sa.String(), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("code_info")
        batch.drop_column("code_snapshot")
