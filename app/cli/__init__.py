"""The `traindeck` command line: a thin layer over the core."""
