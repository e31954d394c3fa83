"""Run Airflow's dag-processor with this package imported once, before it forks a parser per DAG file.

Airflow's dag-processor parses each DAG file in a process it forks from itself, and imports in the
parent first the `airflow.*` modules the file names (`[dag_processor] parsing_pre_import_modules`), so
no parse pays for them. This package is not `airflow.*`: without this, every parse of every DAG file
imported it again (13 modules for the 1-task control DAG, 40 for the canary: 26-56 ms, 8-23x a
same-size file of EmptyOperators; `benchmarks/parse_time.py`). This does for this package what Airflow
does for its own modules: it imports the `latticedb_deploy` modules the DAG files name and every
operator and sensor module (the factory imports those when it builds a DAG), reads the config file
once (`load_config` keeps it, keyed by the file's text: a parser whose file changed reads it again),
then runs `airflow dag-processor` with the arguments it was given.

    python -m latticedb_deploy.dag_processor_preload [dag-processor options]

A parse must still see the package as it is on disk (Airflow re-reads DAG files; this package sits
in the plugins folder, which Airflow loads once per process): in each forked parser, before it parses,
the files of the package's loaded modules are compared with the disk as it was before the preload
imported them (size and mtime, one `stat` each), and if any changed every `latticedb_deploy` module
is dropped so the parser imports the new code (every parse does so until the dag-processor restarts).
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "latticedb_deploy"
# Subpackages whose every module is preloaded: what the factory imports inside its functions.
BUILT_BY_FACTORY = ("latticedb_deploy.operators", "latticedb_deploy.sensors")
# The package's module files on disk before the preload imported them: path -> (mtime_ns, size).
_stamps: dict[str, tuple[int, int]] = {}
_UNKNOWN = (-1, -1)  # the stamp of a file that was not there before the preload: never equal to one on disk
_fork_hook: list[bool] = []  # registered once per process (os.register_at_fork cannot unregister)


def dag_file_imports(dags_folder: str | os.PathLike) -> list[str]:
    """The modules of this package that the DAG files in `dags_folder` import (by reading them, not running them)."""
    names: set[str] = set()
    for path in sorted(Path(dags_folder).rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue  # the dag-processor reports it, with the file's own error
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return sorted(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))


def parse_modules(dags_folder: str | os.PathLike) -> list[str]:
    """What a parse of the DAG files imports from this package: the modules they name, and the operators and sensors."""
    import pkgutil

    built = []
    for package in BUILT_BY_FACTORY:
        module = importlib.import_module(package)
        built += [m.name for m in pkgutil.iter_modules(module.__path__, package + ".")]
    return sorted({*dag_file_imports(dags_folder), *BUILT_BY_FACTORY, *built})


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _package_root() -> Path:
    import latticedb_deploy

    return Path(os.path.abspath(latticedb_deploy.__file__)).parent


def _disk_stamps() -> dict[str, tuple[int, int] | None]:
    """Every module file of the package on disk as it is now (taken before importing anything of it)."""
    return {str(path): _stamp(str(path)) for path in _package_root().rglob("*.py")}


def _loaded_files() -> list[str]:
    return [
        os.path.abspath(module.__file__)
        for name, module in list(sys.modules.items())
        if (name == PACKAGE or name.startswith(PACKAGE + ".")) and getattr(module, "__file__", None)
    ]


def changed_files() -> list[str]:
    """The files of the package's loaded modules that differ on disk from before the preload imported them.

    Every loaded module counts, also one a plugin imported after the preload (Airflow loads plugins in
    the dag-processor): its file is compared with the stamp taken before the preload, so an edit at any
    time after that is seen; a file that did not exist then counts as changed."""
    return [path for path in _loaded_files() if _stamps.get(path, _UNKNOWN) != _stamp(path)]


def forget_if_changed() -> list[str]:
    """If any loaded file of the package changed on disk, drop every module of it (the next import reads the disk)."""
    if not _stamps:
        return []
    changed = changed_files()
    if changed:
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
    return changed


def preload(dags_folder: str | os.PathLike) -> dict[str, float]:
    """Import the modules the DAG files import; from then on every forked child checks them before it runs.

    A module that fails to import is logged and skipped: the parse that needs it reports the real error
    as the DAG file's import error, where a user looks.
    """
    t = time.perf_counter()
    before = _disk_stamps()  # before any import: a file edited while the preload imports counts as changed
    modules = parse_modules(dags_folder)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - preloading is an optimisation, never a failure
            log.warning("latticedb dag-processor preload: could not import %s: %s", name, exc)
    try:
        from latticedb_deploy.config import load_config

        load_config()
    except Exception as exc:  # noqa: BLE001 - the parse reports a bad config as the DAG file's import error
        log.warning("latticedb dag-processor preload: config not read: %s", exc)
    _stamps.clear()
    _stamps.update({path: stamp for path, stamp in before.items() if stamp is not None})
    if not _fork_hook:
        os.register_at_fork(after_in_child=forget_if_changed)
        _fork_hook.append(True)
    took = time.perf_counter() - t
    log.info("latticedb dag-processor preload: %d modules in %.2f s", len(modules), took)
    return {"imports": took, "modules": len(modules)}


def main(argv: list[str] | None = None) -> None:
    """`airflow dag-processor <argv>`, with the package preloaded first."""
    from airflow.__main__ import main as airflow_main
    from airflow.configuration import conf

    try:
        preload(conf.get("core", "dags_folder"))
    except Exception:  # noqa: BLE001 - the dag-processor runs without it, and reports import errors as always
        log.exception("latticedb dag-processor preload failed: parsing without it")
    # argv[0] the `airflow` executable: the --dev reloader restarts with [sys.executable, *sys.argv].
    sys.argv = [shutil.which("airflow") or "airflow", "dag-processor", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()


if __name__ == "__main__":
    main()
