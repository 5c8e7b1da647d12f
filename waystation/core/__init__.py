"""Pure logic shared by every other room: clocks, schema, merge rules, wire models.

Nothing in here does I/O or knows about HTTP or SQL, so all of it can be tested by the
thousand with hypothesis.
"""
