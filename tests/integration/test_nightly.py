"""latticedb_nightly_staging against the local environment (a temp config sends `nightly` to `local`).

Skip path: the newest matching image already runs -> everything skipped, run not failed.
Deploy path: a newer image was pushed -> the strategy DAG is triggered with {image_uri, environment},
runs (executed by tests/integration/triggered_runs.py, standing in for the scheduler), and the
nightly run waits for it through the deferrable TriggerDagRunOperator, then sends a summary.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from tests.envs import ENV
from tests.integration.helpers import run_dag
from tests.integration.triggered_runs import executing_triggered_runs

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_nightly_staging"
ROOT_CONFIG = __import__("pathlib").Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


@pytest.fixture
def nightly_config(tmp_path, monkeypatch):
    def write(**nightly):
        raw = yaml.safe_load(ROOT_CONFIG.read_text())
        raw["nightly"] = {**raw.get("nightly", {}), "environment": ENV.name, "strategy": "rolling", **nightly}
        path = tmp_path / "latticedb.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
        return path

    return write


def _push(local, tag: str) -> str:
    """A new build lands in ECR (scanned, like the bootstrap's images)."""
    def digest(kind):
        return "sha256:" + hashlib.sha256(f"latticedb-{kind}-{tag}".encode()).hexdigest()

    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": digest("config")},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": digest("layer")}],
    }
    ecr = local.client("ecr")
    pushed = ecr.put_image(
        repositoryName=ENV.repository, imageManifest=json.dumps(manifest), imageTag=tag,
        imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
    )["image"]["imageId"]["imageDigest"]
    ecr.start_image_scan(repositoryName=ENV.repository, imageId={"imageTag": tag})
    return pushed


def test_skips_when_the_newest_matching_image_already_runs(local, dagbag, nightly_config):
    nightly_config(tag_pattern=r"^v1\.0\.0$")  # newest match = what the bootstrap runs
    before = local.service()["taskDefinition"]
    state, tasks = run_dag(dagbag, DAG_ID, {})
    assert state == "success", tasks  # a skipped night is not a failed one
    assert tasks == {"resolve_image": "skipped", "wait_for_environment": "skipped", "deploy": "skipped",
                     "summary": "skipped"}
    assert local.service()["taskDefinition"] == before
    assert local.messages() == []


def test_deploys_the_newest_matching_image_then_skips_the_next_night(local, dagbag, nightly_config):
    nightly_config()
    digest = _push(local, "v3.0.0")
    _push(local, "v3.1.0-rc1")  # newer, but does not match ^v\d+\.\d+\.\d+$
    with executing_triggered_runs(["latticedb_deploy_rolling"], max_runs=1, timeout=300) as child:
        state, tasks = run_dag(dagbag, DAG_ID, {})
    assert child["runs"] and child["runs"][0][0] == "latticedb_deploy_rolling", child.get("output")
    assert child["runs"][0][2] == "success", child.get("output")
    assert state == "success", tasks
    assert tasks == {"resolve_image": "success", "wait_for_environment": "success", "deploy": "success",
                     "summary": "success"}
    svc = local.service()
    assert local.task_definition_image(svc["taskDefinition"]).endswith(f"{ENV.repository}@" + digest)
    assert svc["runningCount"] == svc["desiredCount"]

    from airflow.models.dagrun import DagRun
    from airflow.settings import Session
    from sqlalchemy import select

    with Session() as session:
        triggered = session.scalar(select(DagRun).where(DagRun.run_id == child["runs"][0][1]))
        assert triggered.conf == {"image_uri": ENV.image("v3.0.0"), "environment": ENV.name}
    texts = local.message_texts()
    assert any(f"Nightly {ENV.name}: v3.0.0 deployed" in t for t in texts), texts

    # The next night: nothing new, so nothing happens.
    state, tasks = run_dag(dagbag, DAG_ID, {})
    assert state == "success"
    assert tasks == {"resolve_image": "skipped", "wait_for_environment": "skipped", "deploy": "skipped",
                     "summary": "skipped"}


def test_a_night_with_no_matching_image_is_told_once_by_its_summary_naming_the_pattern(local, dagbag, nightly_config):
    """Nothing to deploy because no tag matches: one message, the summary's NOT deployed with the pattern and
    the repository, not also "failed at resolve_image" and "run failed"."""
    nightly_config(tag_pattern=r"^release-\d+$")
    before = local.service()["taskDefinition"]
    state, tasks = run_dag(dagbag, DAG_ID, {})
    assert state == "failed", tasks
    assert tasks == {"resolve_image": "failed", "wait_for_environment": "upstream_failed", "deploy": "upstream_failed",
                     "summary": "failed"}
    assert local.service()["taskDefinition"] == before
    texts = local.message_texts()
    assert len(texts) == 1 and f"Nightly {ENV.name}: NOT deployed" in texts[0], texts
    assert "no image in ECR repository" in texts[0] and ENV.repository in texts[0] and "release-" in texts[0], texts


def test_a_night_whose_image_lookup_aws_refuses_names_the_failed_step_in_its_summary(local, dagbag, nightly_config):
    """An unexpected failure before the deployment (AWS denies DescribeImages): its task's own failure message,
    and a summary whose Why names that step and AWS's words rather than "see the run"."""
    nightly_config()
    local.faults(deny={"operation": "DescribeImages"})
    try:
        state, tasks = run_dag(dagbag, DAG_ID, {})
    finally:
        local.faults(deny=None)
    assert state == "failed" and tasks["resolve_image"] == "failed" and tasks["summary"] == "failed", tasks
    texts = local.message_texts()
    summary = [t for t in texts if f"Nightly {ENV.name}: NOT deployed" in t]
    assert summary and "resolve_image failed" in summary[0] and "DescribeImages" in summary[0], texts
    assert any(t.startswith(f":x: {DAG_ID} failed at resolve_image") for t in texts), texts


def test_schedule_comes_from_config(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.timetable.expression == "0 2 * * *"  # nightly.schedule: 02:00 UTC
    assert str(dag.timetable.timezone) in ("UTC", "Timezone('UTC')")


def test_a_rejected_nightly_blue_green_is_reported_not_deployed(local, dagbag, tmp_path, monkeypatch):
    """Nightly with blue/green where the switch needs approval: the approval is rejected, so the
    nightly run fails and its summary says NOT deployed, and why (not "deployed")."""
    import threading

    from tests.integration.test_blue_green import _answer_when_asked

    raw = yaml.safe_load(ROOT_CONFIG.read_text())
    raw["nightly"] = {**raw.get("nightly", {}), "environment": ENV.name, "strategy": "blue_green"}
    raw["environments"]["local"]["blue_green"] = {**raw["environments"]["local"]["blue_green"], "require_approval": True}
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    _push(local, "v3.0.0")
    before = local.service()["taskDefinition"]
    stop = threading.Event()
    person = threading.Thread(target=_answer_when_asked, args=("latticedb_deploy_blue_green", "Reject", stop), daemon=True)
    person.start()
    try:
        with executing_triggered_runs(["latticedb_deploy_blue_green"], max_runs=1, timeout=300) as child:
            state, tasks = run_dag(dagbag, DAG_ID, {})
    finally:
        stop.set()
        person.join(5)
    assert [(r[0], r[2]) for r in child["runs"]] == [("latticedb_deploy_blue_green", "failed")], child.get("output")
    assert state == "failed", tasks
    assert tasks == {"resolve_image": "success", "wait_for_environment": "success", "deploy": "failed",
                     "summary": "failed"}
    assert local.service()["taskDefinition"] == before
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    texts = local.message_texts()
    summary = [t for t in texts if f"Nightly {ENV.name}: v3.0.0" in t]
    assert summary and "NOT deployed" in summary[0] and "Outcome: rejected: rejected by On-call engineer" in summary[0], texts
    # the nightly tells it once: its summary, not also "latticedb_nightly_staging failed at deploy/summary" or "run failed"
    assert [t for t in texts if DAG_ID in t.split("\n")[0]] == [], texts


HOLDER = "latticedb_deploy_canary/manual__2026-12-07T01:50:00+00:00"


def _lease(local):
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config

    return EnvironmentLock(load_config().environment(ENV.name), client=local.client("dynamodb"))


def test_a_deployment_in_flight_at_night_is_waited_for_then_the_nightly_deploys(local, dagbag, nightly_config,
                                                                                   monkeypatch):
    """02:00 and someone's canary still holds the environment: the nightly waits for it (deferred) instead
    of failing at the triggered run's acquire_environment, and deploys once the canary lets go."""
    import threading
    import time

    from harness.dag_runs import run_dag_run, xcom
    from latticedb_deploy.triggers.environment_free import EnvironmentFreeTrigger

    # The canary lets go once the nightly's wait has seen it hold the lease (the trigger runs in this process
    # under dag.test()), however long the nightly takes to get there: no race with its start-up.
    seen_held = threading.Event()
    read = EnvironmentFreeTrigger._holder

    def holder(self):
        found = read(self)
        if found is not None and found.owner == HOLDER:
            seen_held.set()
        return found

    monkeypatch.setattr(EnvironmentFreeTrigger, "_holder", holder)

    nightly_config(wait_for_environment_seconds=180)
    digest = _push(local, "v3.0.0")
    lock = _lease(local)
    assert lock.acquire(HOLDER) is None
    released = []

    def canary_ends():
        seen_held.wait(240)
        time.sleep(2)  # a poll or so later
        released.append(time.time())
        lock.release(HOLDER)

    threading.Thread(target=canary_ends, daemon=True).start()
    with executing_triggered_runs(["latticedb_deploy_rolling"], max_runs=1, timeout=300) as child:
        dr = run_dag_run(dagbag, DAG_ID, {})
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", tasks
    assert [(r[0], r[2]) for r in child["runs"]] == [("latticedb_deploy_rolling", "success")], child.get("output")
    # It waited for the canary: deferred (not the free-at-once 0) and resumed only after the release.
    assert xcom(DAG_ID, dr.run_id, "wait_for_environment")["waited_seconds"] > 0
    waited = next(ti for ti in dr.get_task_instances() if ti.task_id == "wait_for_environment")
    assert released and waited.end_date.timestamp() >= released[0], (waited.end_date, released)
    assert local.task_definition_image(local.service()["taskDefinition"]).endswith(f"{ENV.repository}@" + digest)
    summary = [t for t in local.message_texts() if f"Nightly {ENV.name}: v3.0.0 deployed" in t]
    assert released and summary and f"for {HOLDER}" in summary[0], summary  # whom it waited for, and how long


def test_an_environment_taken_between_the_wait_and_the_deployment_is_reported_as_taken(local, dagbag, nightly_config,
                                                                                        monkeypatch):
    """The wait saw the environment free; another run took it before the triggered deployment's pre-flight
    could. Nothing deploys (the deployment fails at acquire_environment, changing nothing), and the summary
    says the environment was taken, naming the run that holds it, rather than a bare "run state failed"."""
    from latticedb_deploy.operators.nightly import WaitForEnvironmentOperator

    nightly_config(wait_for_environment_seconds=60)
    _push(local, "v3.0.0")
    before = local.service()["taskDefinition"]
    lock = _lease(local)
    wait = WaitForEnvironmentOperator.execute

    def free_then_taken(self, context):
        result = wait(self, context)
        assert lock.acquire(HOLDER) is None  # someone's canary, a moment after the wait looked
        return result

    monkeypatch.setattr(WaitForEnvironmentOperator, "execute", free_then_taken)
    try:
        with executing_triggered_runs(["latticedb_deploy_rolling"], max_runs=1, timeout=300) as child:
            state, tasks = run_dag(dagbag, DAG_ID, {})
    finally:
        lock.release(HOLDER)
    assert state == "failed" and tasks["wait_for_environment"] == "success" and tasks["summary"] == "failed", tasks
    assert [(r[0], r[2]) for r in child["runs"]] == [("latticedb_deploy_rolling", "failed")], child.get("output")
    assert local.service()["taskDefinition"] == before
    texts = local.message_texts()
    summary = [t for t in texts if f"Nightly {ENV.name}: v3.0.0 NOT deployed" in t]
    assert summary and "the environment was taken before the deployment could hold it" in summary[0], summary
    assert HOLDER in summary[0], summary
    # the nightly tells it once: its summary, not also "latticedb_nightly_staging failed at summary" or "run failed"
    assert [t for t in texts if DAG_ID in t.split("\n")[0]] == [], texts


def _run_while_held(local, dagbag) -> tuple:
    """A nightly run while HOLDER holds the environment's lease the whole time: (state, task states)."""
    lock = _lease(local)
    assert lock.acquire(HOLDER) is None
    try:
        return run_dag(dagbag, DAG_ID, {})
    finally:
        lock.release(HOLDER)


def test_an_environment_held_past_the_wait_is_not_deployed_and_the_summary_names_the_holder(local, dagbag,
                                                                                          nightly_config):
    nightly_config(wait_for_environment_seconds=4)
    _push(local, "v3.0.0")
    before = local.service()["taskDefinition"]
    state, tasks = _run_while_held(local, dagbag)
    assert state == "failed", tasks
    assert tasks == {"resolve_image": "success", "wait_for_environment": "failed", "deploy": "upstream_failed",
                     "summary": "failed"}
    assert local.service()["taskDefinition"] == before  # no deployment was triggered
    texts = local.message_texts()
    summary = [t for t in texts if f"Nightly {ENV.name}: v3.0.0" in t]
    assert summary and "NOT deployed" in summary[0] and f"still held by {HOLDER}" in summary[0], summary
    assert texts == summary, texts  # one event, one message: not also "failed at" each task and "run failed"


def test_a_summary_whose_message_slack_did_not_take_still_gets_the_night_told(local, dagbag, nightly_config,
                                                                              monkeypatch):
    """The held night is told by the summary alone; when Slack refuses that one post, the summary fails with a
    plain failure, so its task's failure message tells it instead: never a failed night with no message."""
    from latticedb_deploy.operators.nightly import NightlySummaryOperator

    nightly_config(wait_for_environment_seconds=0)
    _push(local, "v3.0.0")
    summarise = NightlySummaryOperator.execute

    def slack_refuses_the_summary(self, context):
        local.faults(slack_down=True, slack_mode="500")
        try:
            return summarise(self, context)
        finally:
            local.faults(slack_down=False)  # back for the failure callback, which posts after execute

    monkeypatch.setattr(NightlySummaryOperator, "execute", slack_refuses_the_summary)
    state, tasks = _run_while_held(local, dagbag)
    assert state == "failed" and tasks["summary"] == "failed", tasks
    texts = local.message_texts()
    told = [t for t in texts if t.startswith(f":x: {DAG_ID} failed at summary")]
    assert told and "NOT deployed" in told[0] and HOLDER in told[0], texts
    assert not any(f"Nightly {ENV.name}: v3.0.0" in t for t in texts), texts  # the summary's post did not land
