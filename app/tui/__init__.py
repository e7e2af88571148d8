"""The full-screen terminal interface: screens and widgets over the core's read models.

Nothing here writes to the database directly or runs SQL: screens call `app.queries`
(reads) and `app.jobs` (writes) from thread workers and show plain data.
"""
