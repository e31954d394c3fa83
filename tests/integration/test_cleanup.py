"""Cleanup after a successful deployment: the newest 10 revisions and 20 images stay, and so does
everything a service runs or the rollback needs, however old."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.envs import ENV
from tests.integration.helpers import EditWhenProductionChanges, image, run_dag, run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"
EXTRA_IMAGES = 25
EXTRA_REVISIONS = 12
CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def _manifest(n: int) -> str:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100 + n,
                   "digest": f"sha256:{n:064x}"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000 + n,
                    "digest": f"sha256:{n + 1000:064x}"}],
    })


def _digests(local) -> list[str]:
    ecr = local.client("ecr")
    return [d["imageDigest"] for d in ecr.describe_images(repositoryName=ENV.repository)["imageDetails"]]


def test_cleanup_keeps_the_newest_10_revisions_and_20_images_and_never_the_protected_ones(local, dagbag):
    ecr, ecs = local.client("ecr"), local.client("ecs")
    before = local.service()
    rollback_td = before["taskDefinition"]  # revision 1, v1.0.0: the rollback target after this run
    old_digests = {tag: local.digest(tag) for tag in ("v1.0.0", "v2.0.0")}

    bootstrapped = len(_digests(local))  # one per scenario image
    pushed = []  # oldest first
    for n in range(EXTRA_IMAGES):
        resp = ecr.put_image(
            repositoryName=ENV.repository, imageManifest=_manifest(n), imageTag=f"build-{n:02d}",
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
        )
        pushed.append(resp["image"]["imageId"]["imageDigest"])
    base = ecs.describe_task_definition(taskDefinition=rollback_td)["taskDefinition"]
    registered = []  # oldest first; none runs v2.0.0, so the deployment registers a new revision
    for n in range(EXTRA_REVISIONS):
        containers = [{**c, "image": f"{image('build-00').rsplit(':', 1)[0]}@{pushed[n]}"} for c in base["containerDefinitions"]]
        resp = ecs.register_task_definition(
            family=ENV.family, containerDefinitions=containers,
            **{k: base[k] for k in ("networkMode", "requiresCompatibilities", "cpu", "memory") if base.get(k)},
        )
        registered.append(resp["taskDefinition"]["taskDefinitionArn"])
    assert len(local.revisions()) == 1 + EXTRA_REVISIONS
    assert len(_digests(local)) == bootstrapped + EXTRA_IMAGES

    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    assert tasks["cleanup.deregister_old_revisions"] == "success"
    assert tasks["cleanup.delete_old_images"] == "success"

    in_use = local.service()["taskDefinition"]
    assert in_use not in registered and in_use != rollback_td
    # Revisions: the newest 10 (the new one and the 9 newest registered) plus the rollback target.
    assert set(local.revisions()) == {in_use, *registered[-9:], rollback_td}
    assert local.service(ENV.green_service)["taskDefinition"] == rollback_td
    # Images: the newest 20 pushed, plus what the services and the rollback run (older than all of
    # them), plus what the revisions still ACTIVE run (registered[3:5] use pushed[3:5]: any ACTIVE
    # revision can be rolled back to, so its image stays).
    assert set(_digests(local)) == {*pushed[3:], old_digests["v1.0.0"], old_digests["v2.0.0"]}
    assert local.task_definition_image(rollback_td).endswith(old_digests["v1.0.0"])
    assert local.task_definition_image(in_use).endswith(old_digests["v2.0.0"])



def _push_builds(local, count: int) -> list[str]:
    """`count` builds pushed after the bootstrap's images (build-00 oldest); their digests, oldest first."""
    ecr = local.client("ecr")
    return [
        ecr.put_image(
            repositoryName=ENV.repository, imageManifest=_manifest(n), imageTag=f"build-{n:02d}",
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
        )["image"]["imageId"]["imageDigest"]
        for n in range(count)
    ]


def _register(local, family: str, image_ref: str) -> str:
    """A revision of `family` like the local environment's own, running `image_ref`."""
    ecs = local.client("ecs")
    base = ecs.describe_task_definition(taskDefinition=local.service()["taskDefinition"])["taskDefinition"]
    containers = [{**c, "image": image_ref} for c in base["containerDefinitions"]]
    return ecs.register_task_definition(
        family=family, containerDefinitions=containers,
        **{k: base[k] for k in ("networkMode", "requiresCompatibilities", "cpu", "memory") if base.get(k)},
    )["taskDefinition"]["taskDefinitionArn"]


def _own_the_repository(raw: dict, owner: bool = True) -> None:
    """Mark (or unmark) this worker's environment `ecr_repository_owner` in the raw config."""
    if ENV.name in raw["environments"]:
        raw["environments"][ENV.name]["ecr_repository_owner"] = owner
    else:
        names = raw["local_copies"]["names"]
        names[ENV.name] = {**(names.get(ENV.name) or {}), "ecr_repository_owner": owner}


def _sharing_the_repository(text: str, names: tuple[str, ...] = ("staging", "production"), owner: bool = True) -> str:
    """The config `text` with `names` pulling from this worker's repository, as every real environment
    shares `latticedb` (each local test environment has its own repository, so that workers never collide).
    `owner`: this environment owns the repository, as production owns `latticedb` (only the owner deletes
    images from a shared repository); else production keeps its mark and so becomes the owner."""
    raw = yaml.safe_load(text)
    for name in names:
        raw["environments"][name]["ecr_repository"] = ENV.repository
        if owner:
            raw["environments"][name].pop("ecr_repository_owner", None)
    if owner:
        _own_the_repository(raw)
    return yaml.safe_dump(raw, sort_keys=False)


def _sharing_config(tmp_path, monkeypatch, owner: bool = True) -> None:
    """staging and production pull from this worker's repository (which this environment owns, or production)."""
    path = tmp_path / "latticedb.yaml"
    path.write_text(_sharing_the_repository(CONFIG.read_text(), owner=owner))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))


def test_cleanup_never_deletes_an_image_another_environment_runs_or_keeps_active(local, dagbag, tmp_path, monkeypatch):
    """staging and production share the repository, which this environment owns (as production owns
    `latticedb`): an old image that staging keeps ACTIVE, or that production's service runs (even on a
    deregistered revision), survives a cleanup in this environment; an image only an unconfigured family
    uses does not."""
    _sharing_config(tmp_path, monkeypatch)
    repo = image("x").rsplit(":", 1)[0]
    pushed = _push_builds(local, EXTRA_IMAGES)  # scenario images + 25: the oldest are beyond keep_images=20
    _register(local, "latticedb-task-staging", f"{repo}@{pushed[0]}")  # ACTIVE in staging, by digest
    ecs = local.client("ecs")
    prod_td = _register(local, "latticedb-task-production", f"{repo}:build-01")  # by tag
    ecs.create_cluster(clusterName="latticedb-production")
    ecs.create_service(cluster="latticedb-production", serviceName="latticedb-service-production",
                       taskDefinition=prod_td, desiredCount=0)
    ecs.deregister_task_definition(taskDefinition=prod_td)  # INACTIVE, but production's service runs it
    _register(local, "someone-elses-task", f"{repo}@{pushed[2]}")  # no configured environment uses this family

    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    assert tasks["cleanup.delete_old_images"] == "success"
    remaining = set(_digests(local))
    assert pushed[0] in remaining, "staging's ACTIVE revision runs it"
    assert pushed[1] in remaining, "production's service runs it"
    assert pushed[2] not in remaining and pushed[3] not in remaining, "cleanup did delete unused old images"
    assert set(pushed[-20:]) <= remaining
    assert not any("Warning" in t for t in local.message_texts())


def test_cleanup_deletes_nothing_in_an_environment_that_does_not_own_the_shared_repository(local, dagbag, tmp_path, monkeypatch):
    """staging and production pull from this worker's repository and production owns it (as it owns
    `latticedb`, which dev and staging share): only production's role may delete images there, so this
    environment's cleanup deletes nothing, sends no BatchDeleteImage, names production as the cleaner and
    succeeds without a warning."""
    _sharing_config(tmp_path, monkeypatch, owner=False)
    _push_builds(local, EXTRA_IMAGES)  # scenario images + 25: the oldest are beyond keep_images=20
    before = set(_digests(local))

    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", tasks
    assert tasks["cleanup.delete_old_images"] == "success"
    assert xcom(DAG_ID, dr.run_id, "cleanup.delete_old_images") == {"deleted": [], "skipped": True, "cleaned_by": "production"}
    assert set(_digests(local)) == before
    assert not any("Warning" in t for t in local.message_texts())


def test_cleanup_protects_the_images_of_an_environment_that_comes_to_share_the_repository_mid_run(
    local, dagbag, tmp_path, monkeypatch
):
    """cleanup reads the config file as it is when it runs, not the run's snapshot (README, Configuration).
    When the run starts, staging has a repository of its own; mid-run the file is saved with staging
    pulling from this one. staging keeps ACTIVE a revision running the oldest image: that image survives,
    while old images no environment uses are deleted. (staging's services are in this environment's IAM
    policy, include/iam/local.json, as they must be for any environment that may share the repository;
    the saved file also marks this environment the repository's owner, so it still cleans it.)"""
    path = tmp_path / "latticedb.yaml"
    path.write_text(CONFIG.read_text())
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    repo = image("x").rsplit(":", 1)[0]
    pushed = _push_builds(local, EXTRA_IMAGES)
    _register(local, "latticedb-task-staging", f"{repo}@{pushed[0]}")  # ACTIVE in staging, by digest
    editor = EditWhenProductionChanges(
        local, path, lambda text: _sharing_the_repository(text, ("staging",)), local.service()["taskDefinition"])
    editor.start()
    try:
        state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    finally:
        editor.stop()
    assert editor.edited.is_set(), tasks
    assert state == "success", tasks
    assert tasks["cleanup.delete_old_images"] == "success"
    remaining = set(_digests(local))
    assert pushed[0] in remaining, "staging, sharing the repository since mid-run, keeps a revision running it ACTIVE"
    assert pushed[1] not in remaining and pushed[2] not in remaining, "cleanup did delete unused old images"
    assert set(pushed[-20:]) <= remaining


def test_cleanup_deletes_nothing_when_an_environment_that_may_use_the_repository_is_out_of_sight(
    local, dagbag, tmp_path, monkeypatch
):
    """An environment in another region that may pull from this registry cannot be looked up with
    local's connection: cleanup deletes nothing and says why, as a warning on a succeeded run."""
    raw = yaml.safe_load(CONFIG.read_text())
    dr = dict(raw["environments"]["staging"], region="us-west-2", cluster="latticedb-dr", aws_conn_id="latticedb_dr_aws",
              ecr_repository=ENV.repository)
    raw["environments"]["dr"] = dr  # allowed_registries: the us-east-1 registry local pushes to
    _own_the_repository(raw)  # this environment cleans the repository dr deploys from too
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    pushed = _push_builds(local, EXTRA_IMAGES)
    before = set(_digests(local))

    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    assert tasks["cleanup.delete_old_images"] == "success"
    assert set(_digests(local)) == before and pushed[0] in before
    warnings = [t for t in local.message_texts() if "Warning: cleanup.delete_old_images failed" in t]
    assert warnings and "dr: account 123456789012 in us-west-2 is not visible" in warnings[0], local.message_texts()


def test_cleanup_and_record_failures_are_warnings_on_a_succeeded_deployment(local, dagbag, tmp_path, monkeypatch):
    """Verify passed, so v2.0.0 is deployed: AWS throttling every cleanup call (retries exhausted)
    and an unwritable deployment log are reported as warnings; the run succeeds."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["environments"]["local"]["deployment_log"] = "/dev/null/DEPLOYMENT_LOG.md"  # cannot be created (copies too)
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    repo = image("x").rsplit(":", 1)[0]
    pushed = _push_builds(local, EXTRA_IMAGES)
    for n in range(EXTRA_REVISIONS):
        _register(local, ENV.family, f"{repo}@{pushed[n]}")
    revisions, digests = set(local.revisions()), set(_digests(local))
    local.faults(throttle={"operations": ["DeregisterTaskDefinition", "BatchDeleteImage"], "count": 10_000})

    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", tasks
    for task_id in ("cleanup.deregister_old_revisions", "cleanup.delete_old_images", "record_deployment"):
        assert tasks[task_id] == "success", tasks
        result = xcom(DAG_ID, dr.run_id, task_id)
        assert result["warning"] is True and result["task"] == task_id and result["attempts"] == 3, result
    assert "Throttling" in xcom(DAG_ID, dr.run_id, "cleanup.delete_old_images")["reason"]
    assert "cannot append to the deployment log /dev/null/DEPLOYMENT_LOG.md" in xcom(DAG_ID, dr.run_id, "record_deployment")["reason"]
    assert tasks["notify_success"] == "success"
    assert tasks["rollback.restore_previous_revision"] == "skipped"
    # Deployed and left alone: v2.0.0 serves; nothing was deregistered or deleted.
    assert local.task_definition_image(local.service()["taskDefinition"]).endswith(local.digest("v2.0.0"))
    assert revisions <= set(local.revisions()) and set(_digests(local)) == digests

    texts = local.message_texts()
    assert not any("Deployment failed" in t or "Rollback" in t for t in texts), texts
    for task_id in ("cleanup.deregister_old_revisions", "cleanup.delete_old_images", "record_deployment"):
        assert any(f"Warning: {task_id} failed" in t and "Reason:" in t for t in texts), (task_id, texts)
    assert any("rolling deployment succeeded (3 warnings)" in t for t in texts), texts
