"""latticedb_deploy: LatticeDB's deployment runbook as Airflow DAGs (domain logic, AWS clients, operators)."""
