"""Reusable widgets, one per module; each takes plain data (read models), never ORM rows."""
