"""The create-job wizard (also modify, and editing saved job parameters)."""
