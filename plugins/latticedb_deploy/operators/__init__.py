"""Operators: thin adapters from Airflow to the domain modules and AWS clients."""
