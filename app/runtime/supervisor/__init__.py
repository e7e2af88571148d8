"""A version's supervisor: one detached process per version that owns the version's life.

`__main__` is its entry point (`python -m app.runtime.supervisor ID`), `supervise` the
supervisor itself (admission, start or adoption, watching, the end), `storage` its
object-storage steps and `outcome` how a version's end is told from its ranks' exits.
The control signals other processes send it are in `app.runtime.signals`.
"""
