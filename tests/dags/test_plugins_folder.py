"""The plugins folder as Airflow's plugin manager sees it: one plugin file, the package left to imports.

Airflow's plugin manager executes every `.py` file under the plugins folder, recursively, as a
top-level module named after the file's stem. Without `plugins/.airflowignore` it ran all ~80 modules
of `latticedb_deploy` a second time in every process that loads plugins (each task process among
them): `config`, `base`, `ecs`, ... registered in `sys.modules` over any real module of that name,
two copies of every operator class, and `worker_warmup` preloading boto3's models in every task
(1.4 s of the plugin load standalone, 0.12 s with the ignore file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import json, sys
before = set(sys.modules)
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
package = sys.argv[1]
strays = sorted(
    name for name, mod in list(sys.modules.items())
    if name not in before and not name.startswith("latticedb_deploy")
    and (getattr(mod, "__file__", None) or "").startswith(package)
)
print(json.dumps({"plugins": sorted(p.name for p in plugins), "errors": errors, "strays": strays}))
"""


def test_the_plugin_manager_loads_the_plugin_and_not_the_package_modules(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "PYTHONPATH": str(ROOT / "plugins")}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(ROOT / "plugins" / "latticedb_deploy")],
                         capture_output=True, text=True, env=env, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["errors"] == {}
    assert seen["plugins"] == ["latticedb_deployments"]
    assert seen["strays"] == [], f"package modules executed again as top-level modules: {seen['strays'][:10]}"
