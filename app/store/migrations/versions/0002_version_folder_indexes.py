"""index the output and log folders of versions

A submit refuses output or log folders that another job's versions use; without these
indexes that check read every version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_versions_output", "versions", ["output"])
    op.create_index("ix_versions_log_dir", "versions", ["log_dir"])


def downgrade() -> None:
    op.drop_index("ix_versions_log_dir", table_name="versions")
    op.drop_index("ix_versions_output", table_name="versions")
