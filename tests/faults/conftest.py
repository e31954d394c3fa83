"""Fault-injection suite: the local environment's fixtures (local, dagbag, redis_db, ...) come from
tests/local_stack_fixtures.py through tests/conftest.py, one copy for every test directory."""
