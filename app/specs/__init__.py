"""A job's spec: its schema and parsing (`spec`), the rules that check it against this
machine's engines and folders (`rules`), and how its algorithm is invoked — the argv,
placeholders and environment a rank gets (`invocation`)."""
