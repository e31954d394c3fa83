"""Cleanup after a successful deployment: the newest 10 revisions and 20 images stay, and so does
everything a service runs or the rollback needs, however old."""

from __future__ import annotations

import json

import pytest

from tests.envs import ENV
from tests.integration.helpers import image, run_dag

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"
EXTRA_IMAGES = 25
EXTRA_REVISIONS = 12


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
    assert len(_digests(local)) == 8 + EXTRA_IMAGES

    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    assert tasks["cleanup.deregister_old_revisions"] == "success"
    assert tasks["cleanup.delete_old_images"] == "success"

    in_use = local.service()["taskDefinition"]
    assert in_use not in registered and in_use != rollback_td
    # Revisions: the newest 10 (the new one and the 9 newest registered) plus the rollback target.
    assert set(local.revisions()) == {in_use, *registered[-9:], rollback_td}
    assert local.service(ENV.green_service)["taskDefinition"] == rollback_td
    # Images: the newest 20 pushed plus what the services and the rollback run (older than all of them).
    assert set(_digests(local)) == {*pushed[-20:], old_digests["v1.0.0"], old_digests["v2.0.0"]}
    assert local.task_definition_image(rollback_td).endswith(old_digests["v1.0.0"])
    assert local.task_definition_image(in_use).endswith(old_digests["v2.0.0"])

