"""``make dev``: a local PostgreSQL, ``dagster dev`` on loopback, and their clean stop.

:mod:`.postgres` runs the instance database, :mod:`.server` starts ``dagster
dev`` against it, :mod:`.launcher` starts its runs from a warm template,
:mod:`.reaper` stops every process it leaves behind.
"""
