"""Airflow plugin: the Deployments page (latticedb_deploy.page) at /latticedb, with a "Deployments" nav entry.

Airflow 3's api-server mounts `fastapi_apps` under their `url_prefix`; `external_views` adds the
link to the UI's navigation. The app is built lazily-cheap here: FastAPI only, no AWS client until
a request arrives.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from latticedb_deploy.page import create_app

URL_PREFIX = "/latticedb"


class LatticeDBDeploymentsPlugin(AirflowPlugin):
    name = "latticedb_deployments"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "LatticeDB deployments"}]
    external_views = [
        {
            "name": "Deployments",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "latticedb_deployments",
        }
    ]
