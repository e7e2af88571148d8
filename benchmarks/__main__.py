"""`python -m benchmarks`: the same as `scripts/bench`."""

from benchmarks.run import main

raise SystemExit(main())
