"""Service-task handlers for the shipped processes: the glue between the engine and `domain/`.

They live in the engine because they use its registry, errors and store, and only the engine
may depend on both (DESIGN §1: `engine` -> `rules`, `domain`). The composition root registers
them (`api/bootstrap.py`).
"""
