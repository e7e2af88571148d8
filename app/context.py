"""The handle every front end (CLI, TUI, supervisor) opens first: settings + database."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog import DbCatalog, sync_catalog
from app.config import Settings, load_settings
from app.store.db import Database, open_database


@dataclass
class Context:
    """Settings and the migrated database of this process."""

    settings: Settings
    db: Database

    @classmethod
    def open(cls, settings: Settings | None = None, *, sync: bool = True) -> Context:
        """Load the settings, open (and migrate) the database, mirror the catalog."""
        settings = settings or load_settings()
        db = open_database(settings.resolved_database_url)
        if sync:
            from app.presets import sync_presets

            sync_catalog(db, settings)
            sync_presets(db)
        return cls(settings, db)

    @property
    def catalog(self) -> DbCatalog:
        """The catalog specs are validated against."""
        return DbCatalog(self.db, self.settings)
