"""What Traindeck keeps: the database (`db`: engine, sessions and `migrations`; `models`:
its tables), the standard-library read path over it that cold commands use
(`quicklist`), and the content-addressed store of code and dataset snapshots
(`snapshot`)."""
