"""Table-entry bundles: what the compiler emits and the loader writes.

A bundle is expressed in P4 names (tables, key fields, actions, params as P4Info spells them),
checked against the program's P4Info when it is built (`schema.Schema`), and converted to
P4Runtime messages only at the edge (`p4rt`), so text and JSON output stay readable and diffable.
"""
