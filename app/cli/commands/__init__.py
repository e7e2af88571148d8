"""The `traindeck` commands, one module per group; each registers its parsers with
`add_commands(sub, add)` (see `app.cli.common.AddCommand`) and imports only the standard
library and `app.cli` plumbing at module level, the core inside its handlers."""
