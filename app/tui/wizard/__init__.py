"""The create-job wizard (also modify, and editing saved job parameters).

Its model and checks, without Textual: `choices` (what it offers, read from the
database), `model` (the form's fields as plain data, to and from a raw spec) and `checks`
(the CLI's rules on that spec, and where each error is shown). Its widgets: `screen` (the
steps, checking as you type, confirm with a modify's changes, and create), `form` (the
fields of steps 1-4), `rows` (the lists that grow and shrink) and `steps` (the step
indicator).
"""
