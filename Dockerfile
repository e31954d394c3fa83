# The Airflow image for docker-compose.yaml: the official image plus this package's pinned requirements.
# The python3.11 variant because requirements.txt is resolved on Python 3.11. The official image
# already ships the Celery and Postgres providers and drivers the compose stack uses.
#
#   docker compose build                                   # runtime image (requirements.txt)
#   docker compose --profile local build                   # + the local environment's image (requirements-dev.txt)
FROM apache/airflow:3.3.2-python3.11

# requirements.txt for Airflow itself; requirements-dev.txt (adds moto[server]) for the `local` profile.
ARG REQUIREMENTS=requirements.txt

USER airflow
COPY --chown=airflow:0 requirements.txt requirements-dev.txt /opt/airflow/requirements/
# Pinning apache-airflow to the image's own version keeps pip from up- or downgrading Airflow.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r "/opt/airflow/requirements/${REQUIREMENTS}"
