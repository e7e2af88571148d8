"""Database engine, sessions and migrations — the one place that creates them.

SQLite (the default) runs in WAL mode with a busy timeout so the TUI, the CLI and every
supervisor can share one file. Write transactions on SQLite start with `BEGIN IMMEDIATE`:
taking the write lock first means two processes never both read and then collide on
the write (the cause of instant "database is locked" errors under deferred locking).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from app.errors import DatabaseError

log = logging.getLogger("traindeck.db")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0005"
"""The newest migration; start-up runs alembic only when the database is behind it."""

_WRITE_OPTION = "traindeck_write"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Manage transactions ourselves (see `_on_begin`) instead of pysqlite's implicit ones.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite") or "///" not in url:
        return None
    path = url.split("///", 1)[1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder created and the pragmas above."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30},
            # One shared connection, or every connection would see its own empty database.
            poolclass=StaticPool if path is None else None,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


CHECKPOINT_SECONDS = 1.0
"""How often a process that checkpoints in the background (`checkpoint_in_background`)
moves what its writes added to the write-ahead log into the database file."""


def _no_autocheckpoint(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint = 0")


class Database:
    """An engine plus the two kinds of session the app uses: read and write."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = make_engine(url)
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"database {url}: {exc}") from exc
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._writes = 0
        """Write transactions committed by this process (read by the checkpointer)."""
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; objects stay usable after it closes."""
        with self._translate(), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock from its start; commits on exit."""
        with self._translate(), Session(self._write_engine, expire_on_commit=False) as session:
            yield session
            session.commit()
        self._writes += 1

    def checkpoint_in_background(self) -> None:
        """Keep the write-ahead log's checkpoints out of this process's writes.

        By default SQLite checkpoints on commit, once the log holds about 4 MB: the
        commit that crosses the line copies the log into the database file and syncs it
        to disk first — milliseconds, or hundreds on a busy disk, added to whatever that
        write was (a scheduling decision, a status). For a long-lived process (a
        supervisor, the TUI): its connections no longer checkpoint on commit, and a
        thread of its own does it (passive: it waits for no reader or writer) every
        CHECKPOINT_SECONDS when this process wrote. Other processes keep SQLite's way.
        SQLite files only; calling it again does nothing.
        """
        if self._checkpointer is not None or sqlite_file(self.url) is None:
            return
        event.listen(self.engine, "connect", _no_autocheckpoint)
        self.engine.dispose()  # pooled connections were opened without it
        self._checkpointer = threading.Thread(target=self._checkpoints, name="checkpoints",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoints(self) -> None:
        done = 0
        while not self._closing.wait(CHECKPOINT_SECONDS):
            writes = self._writes
            if writes == done:
                continue
            try:
                self.checkpoint()
            except (SQLAlchemyError, sqlite3.Error) as exc:
                log.warning("checkpoint of %s failed: %s", self.url, exc)
                continue
            done = writes
        if self._writes != done:
            with contextlib.suppress(SQLAlchemyError, sqlite3.Error):
                self.checkpoint()

    def checkpoint(self) -> None:
        """Move the write-ahead log's committed pages into the database file (passive)."""
        raw = self.engine.raw_connection()
        try:  # (a raw connection is in autocommit: no transaction is opened around it)
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except SADatabaseError as exc:  # locked, read-only, corrupt, unreachable, ...
            raise DatabaseError(f"database {self.url}: {exc.orig}") from exc

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (fast when already there).

        Refuses a database that a newer Traindeck made (its schema is unknown here) and
        an SQLite file emptied by accident (it would otherwise become a new database).
        """
        path = sqlite_file(self.url)
        if path is not None and _emptied(path):
            raise DatabaseError(f"database {path} is empty (0 bytes) but not new: restore it "
                                "from a backup, or remove it to start with no jobs")
        try:
            current = self.current_revision()
            if current == HEAD_REVISION:
                return
            if current is not None and current not in known_revisions():
                raise DatabaseError(f"database {self.url} was made by a newer Traindeck "
                                    f"(revision {current}); upgrade Traindeck")
            run_migrations(self.engine)
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise DatabaseError(f"database {self.url}: {detail}") from exc

    def current_revision(self) -> str | None:
        """The alembic revision stored in the database, or None for an empty one."""
        with self.engine.connect() as conn:
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except OperationalError as exc:
                if "no such table" in str(exc.orig):
                    return None
                raise

    def dispose(self) -> None:
        """Close every pooled connection (before a fork, or at exit); a background
        checkpointer ends (after one more checkpoint, if this process wrote since)."""
        if self._checkpointer is not None:
            self._closing.set()
            self._checkpointer.join()
        self.engine.dispose()


def _emptied(path: Path) -> bool:
    """A 0-byte SQLite file with no write-ahead log beside it: truncated, not fresh (a
    new database is created by this process, after this check)."""
    try:
        if path.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    wal = path.with_name(path.name + "-wal")
    return not (wal.exists() and wal.stat().st_size)


def known_revisions() -> set[str]:
    """Every schema revision this Traindeck knows (its migration scripts)."""
    return {p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py")}


def alembic_config(engine: Engine) -> Any:
    """An alembic Config pointing at the packaged migrations and this engine."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats '%' as interpolation: escape it (non-ASCII paths render as %xx).
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    return cfg


def run_migrations(engine: Engine) -> None:
    """Run alembic's upgrade to head on `engine` (imported lazily: start-up rarely needs it)."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


@lru_cache(maxsize=4)
def _open(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db


def open_database(url: str | None = None) -> Database:
    """The migrated database of this process for `url` (default: the settings' URL)."""
    if url is None:
        from app.config import get_settings

        url = get_settings().resolved_database_url
    return _open(url)


def reset_cache() -> None:
    """Forget opened databases (tests switch TRAINDECK_HOME between cases)."""
    _open.cache_clear()
