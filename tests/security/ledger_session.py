"""The call-ledger proof, at the end of a pytest session (hooks imported by tests/conftest.py).

The session's shared local stack (tests/stack.py) runs with `LATTICEDB_LOCAL_AWS_LEDGER` pointing at
a file in one shared directory (`LATTICEDB_AWS_LEDGER_DIR`, created once by the controlling process
and inherited by workers); every entry names the environment whose endpoint the call came to. When
the whole session is over, the controller merges the files and checks every AWS call the DAGs made
(through Airflow's AWS connection) against that environment's policy, include/iam/<environment>.json
(local-2, local-3, ... are `local` with their own names: the same statements on their own resources):

- a call its environment's policy does not allow fails the session, whatever ran;
- a granted action that no call used, in any environment, fails it too, but only when the session ran
  every test file of tests/integration without a failure and without -k/-m (otherwise "unused" means
  "not run"). The workers split the suite, so a grant counts as used if some environment used it.

The verdict is printed in the terminal summary and written to <ledger dir>/verdict.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEDGER_DIR_ENV = "LATTICEDB_AWS_LEDGER_DIR"
SUITE_DIR = ROOT / "tests" / "integration"
POLICY = ROOT / "include" / "iam" / "local.json"

_ran: set[str] = set()
_failed: set[str] = set()


def ledger_dir() -> Path:
    return Path(os.environ[LEDGER_DIR_ENV])


def ledger_file() -> Path:
    """The ledger of the session's shared local stack (tests/stack.py); entries name their environment."""
    return ledger_dir() / "local-stack.jsonl"


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::", 1)[0]
    if report.when == "call" or report.skipped:
        _ran.add(path)
    if report.failed:
        _failed.add(path)


def suite_complete(config) -> bool:
    if config.getoption("keyword", "") or config.getoption("markexpr", ""):
        return False
    wanted = {p.relative_to(ROOT).as_posix() for p in SUITE_DIR.glob("test_*.py")}
    return wanted <= _ran and not (wanted & _failed)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    config = session.config
    if hasattr(config, "workerinput") or LEDGER_DIR_ENV not in os.environ:
        return
    files = sorted(ledger_dir().glob("*.jsonl"))
    if not files:
        return
    from tests.security.iam_check import deployment_calls, read_ledgers

    complete = suite_complete(config)
    calls = deployment_calls(read_ledgers(files))
    verdict = check_by_environment(calls, require_all_used=complete)
    report = {"files": [str(f) for f in files], "calls": len(calls), "complete_suite": complete, **verdict.__dict__}
    (ledger_dir() / "verdict.json").write_text(json.dumps(report, indent=2))
    config.stash[_VERDICT] = (verdict, complete, len(calls))
    if not verdict.ok:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_VERDICT = pytest.StashKey[tuple]()


def check_by_environment(calls: list[dict], require_all_used: bool):
    """Each environment's calls against its own policy; a grant is unused only if no environment used it."""
    from tests.security.iam_check import Verdict, check

    by_env: dict[str, list[dict]] = {}
    for call in calls:
        by_env.setdefault(call.get("environment") or "local", []).append(call)
    total, unused = Verdict(), None
    for name, entries in sorted(by_env.items()):
        verdict = check(json.loads((POLICY.parent / f"{name}.json").read_text()), entries, require_all_used)
        total.denied += verdict.denied
        total.problems += verdict.problems
        total.checked += verdict.checked
        unused = set(verdict.unused) if unused is None else unused & set(verdict.unused)
    if require_all_used:
        total.unused = sorted(unused) if unused is not None else check(json.loads(POLICY.read_text()), []).unused
    return total


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    found = config.stash.get(_VERDICT, None)
    if found is None:
        return
    verdict, complete, calls = found
    scope = "allowed, every grant used" if complete else "allowed (grant usage not judged: partial run)"
    terminalreporter.section("AWS call ledger vs include/iam/<environment>.json")
    if verdict.ok:
        terminalreporter.write_line(f"{calls} AWS calls, {verdict.checked} authorizations: all {scope}")
        return
    for line in verdict.lines():
        terminalreporter.write_line(line, red=True)
    terminalreporter.write_line(f"AWS call ledger FAILED ({calls} calls; details in {ledger_dir() / 'verdict.json'})", red=True)
