"""cleanup: old task definition revisions and ECR images, never one that is or may be in use."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import DeploymentStepOperator
from latticedb_deploy.operators.best_effort import BestEffortMixin


def _protected_task_definitions(operator: DeploymentStepOperator, ecs: Any) -> set[str]:
    """In use by either slot's service, the rollback target (baseline), and the revision just deployed."""
    protected = {svc["taskDefinition"] for svc in ecs.describe_services(*operator.env.services)}
    baseline, new = operator.baseline, operator.new_revision
    if baseline:
        protected.add(baseline["task_definition"])
    if new:
        protected.add(new["task_definition"])
    return protected


class CleanupRevisionsOperator(BestEffortMixin, DeploymentStepOperator):
    """Deregister revisions beyond the newest N; never the one in use or the rollback target."""

    def run(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.revisions import revisions_to_deregister

        ecs = EcsClient(self.env)
        protected = _protected_task_definitions(self, ecs)
        doomed = revisions_to_deregister(ecs.list_revisions(), self.env.keep_task_definitions, protected)
        for arn in doomed:
            ecs.deregister(arn)
            self.log.info("Deregistered %s", arn)
        self.log.info("Kept the newest %d revisions; deregistered %d", self.env.keep_task_definitions, len(doomed))
        return {"deregistered": doomed}


class CleanupImagesOperator(BestEffortMixin, DeploymentStepOperator):
    """Delete ECR images beyond the newest `keep_images`; never one that any environment may run.

    Environments share the repository, so protected are: every image referenced by a task
    definition that is ACTIVE, or run by a slot service, in any configured environment that can
    use this repository (latticedb_deploy.aws.in_use), plus this run's rollback target and new
    revision. If such an environment cannot be looked up (another account or region, an error),
    nothing is deleted and the step ends with a warning saying which one.

    Only the repository's cleaner deletes (latticedb_deploy.config.image_cleaner: the environment marked
    `ecr_repository_owner`, else the repository's only user); its IAM policy alone grants
    ecr:BatchDeleteImage. Elsewhere (dev and staging on production's repository) the step deletes
    nothing, says which environment's role cleans the repository, and succeeds.
    """

    def run(self, context: Any) -> dict:
        from latticedb_deploy.config import image_cleaner, load_config, registry_host

        # The file as it is now, not the run's snapshot, on purpose: an environment added to it mid-run that
        # shares the repository is protected too, and a broken file deletes nothing (README, Configuration).
        everyone = list(load_config().environments.values())
        me = next((e for e in everyone if e.name == self.env.name), self.env)
        cleaner = image_cleaner(me, everyone)
        if cleaner is None or cleaner.name != self.env.name:
            repository = f"{registry_host(self.env)}/{self.env.ecr_repository}"
            who = (
                f"{cleaner.name}'s role cleans it (ecr_repository_owner)" if cleaner else
                "no environment cleans it: mark the most protected environment that uses it `ecr_repository_owner: true`"
            )
            self.log.info(
                "Deleted no image: %s is shared with other environments and %s is not its cleaner; %s. "
                "(This environment's IAM policy grants no ecr:BatchDeleteImage on it.)",
                repository, self.env.name, who,
            )
            return {"deleted": [], "skipped": True, "cleaned_by": cleaner.name if cleaner else None}
        return self._clean(everyone)

    def _clean(self, everyone: list) -> dict:
        from latticedb_deploy.aws.ecr import EcrClient, image_digests_referenced, images_to_delete
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.in_use import images_in_use

        ecs, ecr = EcsClient(self.env), EcrClient(self.env)
        in_use = images_in_use(self.env, everyone)
        if in_use.unseen:
            raise AirflowFailException(
                "deleted no image: environments that may run images from this repository cannot be looked up "
                "with this connection: " + "; ".join(in_use.unseen)
            )
        where = {image: list(users) for image, users in in_use.images.items()}
        # Protected whatever images_in_use found: both slots' services, the rollback target, the new revision
        # (read again here, in case this environment's own registry list left it out of images_in_use);
        # a task definition images_in_use has described is not described again.
        for arn in sorted(_protected_task_definitions(self, ecs)):
            images = in_use.described.get(arn) or [ecs.container_image(ecs.describe_task_definition(arn))]
            for image in images:
                where.setdefault(image, []).append(f"{self.env.name}: {arn.split('/')[-1]} (this run)")
        images = ecr.list_images()
        by_tag = {tag: info.digest for info in images for tag in info.tags}
        protected = image_digests_referenced(sorted(where), by_tag)
        new = self.new_revision
        if new and new.get("digest"):
            protected.add(new["digest"])
        doomed = images_to_delete(images, self.env.keep_images, protected)
        labels = {info.digest: ",".join(info.tags) or "untagged" for info in images}
        for info in images[self.env.keep_images :]:
            if info.digest in protected:
                users = [w for ref, ws in where.items() for w in ws if info.digest in image_digests_referenced([ref], by_tag)]
                self.log.info("Kept %s (%s), in use: %s", info.digest[:19], labels[info.digest], "; ".join(users) or "this run")
        deleted = ecr.delete_images(doomed)
        for digest in deleted:
            self.log.info("Deleted %s (%s)", digest[:19], labels.get(digest))
        self.log.info(
            "Environments checked: %s (ignored: %s). Kept the newest %d of %d images and %d in use; deleted %d",
            ", ".join(in_use.checked), "; ".join(in_use.ignored) or "none",
            self.env.keep_images, len(images), len(protected), len(deleted),
        )
        return {"deleted": deleted, "protected": sorted(protected), "environments_checked": in_use.checked}
