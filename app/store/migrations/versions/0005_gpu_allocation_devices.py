"""GPU allocations name their device: NVML UUID, and MIG instances as devices of their own

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _rebuild_allocations(columns: list[sa.Column[object]], key: list[str], copied: str
                         ) -> None:
    """Make `gpu_allocations` anew with `columns` and primary key `key`, copying `copied`
    (SQLite cannot change a primary key in place)."""
    op.create_table(
        "gpu_allocations_new",
        sa.Column("gpu", sa.Integer(), nullable=False), *columns,
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("allocated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"]),
        sa.PrimaryKeyConstraint(*key),
    )
    op.execute(f"INSERT INTO gpu_allocations_new ({copied}) SELECT {copied} "
               "FROM gpu_allocations")
    op.drop_index("ix_gpu_allocations_version_id", table_name="gpu_allocations")
    op.drop_table("gpu_allocations")
    op.rename_table("gpu_allocations_new", "gpu_allocations")
    op.create_index("ix_gpu_allocations_version_id", "gpu_allocations", ["version_id"])


def upgrade() -> None:
    # Allocations of versions running across the upgrade are kept, as whole GPUs.
    _rebuild_allocations(
        [sa.Column("mig_index", sa.Integer(), nullable=False, server_default="-1"),
         sa.Column("uuid", sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                   server_default="")],
        ["gpu", "mig_index"], "gpu, version_id, allocated_at")
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("allocated_uuids", sa.String(), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("allocated_uuids")
    op.execute("DELETE FROM gpu_allocations WHERE mig_index != -1")
    _rebuild_allocations([], ["gpu"], "gpu, version_id, allocated_at")
