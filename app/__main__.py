"""`python -m app` runs the same entry point as the `traindeck` command."""

from app.cli.warm import main

raise SystemExit(main())
