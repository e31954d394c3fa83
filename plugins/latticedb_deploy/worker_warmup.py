"""Imported by a Celery worker at start-up (Celery's `imports`, see worker_preload): loads, once, what
every task would otherwise load on its own."""

from latticedb_deploy.worker_preload import warm

WARMED = warm()
