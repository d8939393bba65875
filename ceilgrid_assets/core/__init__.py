"""The Dagster-free core, by concern: ``engine`` (placement), ``learning``, ``outputs``.

Each imports only downward (outputs and learning may use the engine, never the
reverse); the command line, the editor and the Dagster definitions all call it.
"""
