"""Running versions: supervisor, executors, GPU inventory and scheduling."""
