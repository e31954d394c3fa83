"""The dag-processor's preload: a parser forked after it imports nothing of ours, yet parses what is on disk.

Runs the way `python -m latticedb_deploy.dag_processor_preload` runs Airflow's dag-processor: a fresh
process preloads, then forks a child per parse (Airflow's bare `os.fork()`), and the child parses a
DAG file with `DagBag`. On a copy of dags/, plugins/ and the config, so that the test can change a
module or the config between forks, as a deploy of new code or a config edit does under a running
dag-processor (and while the preload itself runs, and to a module a plugin imported after it): over every
kind of change the child must parse the new version, never the preloaded one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latticedb_deploy.dag_processor_preload import BUILT_BY_FACTORY, dag_file_imports, parse_modules

ROOT = Path(__file__).resolve().parents[2]

# Preload, then for each change named on the command line: make it, fork, parse in the child, report.
PARENT = r"""
import json, os, sys, gc
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
from latticedb_deploy import dag_processor_preload as preload
from tests.forked import in_a_fork
dags, changes = Path(sys.argv[1]), json.loads(sys.argv[2])

def edit(change):
    path = Path(change["path"])
    path.write_text(path.read_text().replace(change["old"], change["new"]))

during = [c for c in changes if c and c.get("when") == "during_preload"]
if during:  # the edit lands while the preload runs: after its imports, as it reads the config
    from latticedb_deploy import config
    read = config.load_config
    def load_config_after_an_edit(*args, **kwargs):
        edit(during[0])
        return read(*args, **kwargs)
    config.load_config = load_config_after_an_edit
took = preload.preload(dags)
if during:
    config.load_config = read
import latticedb_deploy.page  # noqa: F401  (as the Deployments plugin does in the dag-processor, after the preload)
gc.freeze()
report = {"preloaded": took["modules"], "forks": []}
for change in changes:
    if change and change.get("when") != "during_preload":
        edit(change)

    def parse_the_canary():
        before = set(sys.modules)
        bag = DagBag(dag_folder=str(dags / "latticedb_deploy_canary.py"))
        dag = next(iter(bag.dags.values()), None)
        from latticedb_deploy import strategies
        from latticedb_deploy.config import load_config
        return {
            "errors": {k: str(v)[-300:] for k, v in bag.import_errors.items()},
            "imported": sorted(m for m in set(sys.modules) - before if m.startswith("latticedb_deploy")),
            "marker": getattr(strategies, "PRELOAD_MARKER", None),
            "description": dag.description if dag else None,
            "max_pause": load_config().environment("staging").max_pause_seconds,
        }

    report["forks"].append(in_a_fork(parse_the_canary))
print("RESULT " + json.dumps(report))
"""


@pytest.fixture
def copy(tmp_path):
    """dags/, plugins/ and the config copied: a checkout the test may change under a preloaded parent."""
    for part in ("dags", "plugins"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (tmp_path / "latticedb.yaml").write_text((ROOT / "include" / "config" / "latticedb.yaml").read_text())
    return tmp_path


def _run(copy: Path, changes: list[dict | None]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=os.pathsep.join([str(copy / "plugins"), str(ROOT)]),  # ROOT: tests.forked
               LATTICEDB_CONFIG=str(copy / "latticedb.yaml"),
               AIRFLOW__CORE__DAGS_FOLDER=str(copy / "dags"), AIRFLOW__CORE__PLUGINS_FOLDER=str(copy / "plugins"))
    out = subprocess.run([sys.executable, "-c", PARENT, str(copy / "dags"), json.dumps(changes)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=str(copy))
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    for fork in report["forks"]:
        assert "crash" not in fork, fork
        assert fork["errors"] == {}, fork["errors"]
    return report


def test_a_parser_forked_after_the_preload_imports_nothing_of_ours():
    """Every module a parse of any DAG file imports from this package is preloaded (so no parse imports it)."""
    code = (
        "import sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "from latticedb_deploy.dag_processor_preload import preload\n"
        "preload(sys.argv[1])\n"
        "before = set(sys.modules)\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "print('RESULT ' + json.dumps({'dags': len(bag.dags), 'errors': list(bag.import_errors),\n"
        "      'imported': sorted(m for m in set(sys.modules) - before if m.startswith('latticedb_deploy'))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "dags")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["errors"] == []
    assert result["dags"] == len(list((ROOT / "dags").glob("*.py")))
    assert result["imported"] == [], f"a parse imported what the preload did not: {result['imported']}"


def test_the_preload_names_what_the_dag_files_import_and_every_operator_and_sensor():
    named = dag_file_imports(ROOT / "dags")
    assert "latticedb_deploy.factory" in named and "latticedb_deploy.strategies" in named
    assert all(m.startswith("latticedb_deploy") for m in named)
    modules = parse_modules(ROOT / "dags")
    for package in BUILT_BY_FACTORY:
        on_disk = {p.stem for p in (ROOT / "plugins" / package.replace(".", "/")).glob("*.py")} - {"__init__"}
        assert {f"{package}.{stem}" for stem in on_disk} <= set(modules)


# What a deploy of new code or a config edit changes under a running dag-processor. Each: the edit,
# and what the child's parse must then show.
CHANGES = {
    "nothing": (None, {}),
    "a module the DAG file imports": (
        {"path": "plugins/latticedb_deploy/strategies.py", "old": "from __future__ import annotations",
         "new": "from __future__ import annotations\nPRELOAD_MARKER = 'new code'"},
        {"marker": "new code"},
    ),
    "a module the factory imports inside a function": (
        {"path": "plugins/latticedb_deploy/operators/plan.py", "old": "from __future__ import annotations",
         "new": "from __future__ import annotations\nimport latticedb_deploy.strategies as _s\n_s.PRELOAD_MARKER = 'operator'"},
        {"marker": "operator"},
    ),
    "the config file": (
        {"path": "latticedb.yaml", "old": "\n  staging:\n", "new": "\n  staging:\n    max_pause_seconds: 4321\n"},
        {"max_pause": 4321},
    ),
    "a module a plugin imported after the preload": (
        {"path": "plugins/latticedb_deploy/page.py", "old": "from __future__ import annotations",
         "new": "from __future__ import annotations\nimport latticedb_deploy.strategies as _s\n_s.PRELOAD_MARKER = 'page'"},
        {"reloaded": True},
    ),
    "a module edited while the preload ran": (
        {"path": "plugins/latticedb_deploy/strategies.py", "old": "from __future__ import annotations",
         "new": "from __future__ import annotations\nPRELOAD_MARKER = 'mid-preload'", "when": "during_preload"},
        {"reloaded": True},
    ),
    "the DAG file itself": (
        {"path": "dags/latticedb_deploy_canary.py", "old": "dag = build_deployment_dag(CANARY, extra_params=canary_params())",
         "new": "dag = build_deployment_dag(CANARY, extra_params=canary_params())\ndag.description = 'edited'"},
        {"description": "edited"},
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_parser_forked_after_a_change_parses_the_change(copy, change):
    edit, expected = CHANGES[change]
    if edit is not None:
        edit = {**edit, "path": str(copy / edit["path"])}
        assert edit["old"] in Path(edit["path"]).read_text(), "the test's edit no longer applies"
    report = _run(copy, [None, edit, None])
    before, after, later = report["forks"]
    expected = dict(expected)
    reloaded = expected.pop("reloaded", False) or change.startswith("a module the")
    if edit is None or edit.get("when") != "during_preload":
        assert before["imported"] == [], "the first parser imported modules the preload should have"
        assert before["marker"] is None and before["max_pause"] != 4321 and before["description"] != "edited"
    else:  # edited after its imports: every parser reads the disk, never the code the preload imported
        assert "latticedb_deploy.factory" in before["imported"] and before["marker"] == "mid-preload", before
    for fork in (after, later):
        for key, value in expected.items():
            assert fork[key] == value, f"{change}: the parser saw the preloaded version ({key}={fork[key]!r})"
    if reloaded:
        assert "latticedb_deploy.factory" in after["imported"], "the changed package was not imported again"
    else:
        assert after["imported"] == [], f"{change}: the package was imported again though no module changed"
