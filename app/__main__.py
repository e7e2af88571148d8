"""`python -m app` runs the same entry point as the `traindeck` command."""

from app.cli.main import main

raise SystemExit(main())
