"""``wattstream audit``: the simulator's delivery journal against the database (issue 9).

Modules: :mod:`.hours` (which hours must be closed), :mod:`.compare` (the pure comparison),
:mod:`.store` (the database reader), :mod:`.metrics` (Prometheus), :mod:`.app` (run once or
watch). Imports only :mod:`schema` of the project, never the worker it audits.
"""
