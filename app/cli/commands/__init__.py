"""The `traindeck` commands, one module per group, assembled by `app.cli.main`. Each
registers its parsers with `add_commands(add)` (`app.cli.common.AddCommand`) and imports
only the standard library and `app.cli` plumbing at module level, the core in handlers."""
