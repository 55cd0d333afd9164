"""BFCL (the Berkeley Function Calling Leaderboard) inside the environment: one task per category.

`data` reads the installed ``bfcl-eval`` distribution (``pip install --no-deps bfcl-eval==2026.3.23``),
`schema` turns BFCL's parameter dialect into JSON Schema, `checker` is BFCL's AST checker reimplemented,
`backends` runs the multi-turn categories on BFCL's own executable classes, `tasks` defines the tasks and
their oracles, and `benchmark` runs a policy over categories and aggregates the leaderboard's table.
"""
