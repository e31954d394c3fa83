"""Who deletes images from a shared ECR repository: one environment per repository (config.image_cleaner).

All real environments deploy from `latticedb`; only production (`ecr_repository_owner: true`) may delete
from it, so dev's and staging's roles cannot delete what production runs or rolls back to. The IAM
policy (tests/security/test_iam_policy.py) and cleanup.delete_old_images follow the same rule.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import ConfigError, image_cleaner, load_config, may_delete_images

CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def _write(tmp_path, edit) -> Path:
    raw = yaml.safe_load(CONFIG.read_text())
    edit(raw)
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _cleaners(config) -> dict[str, str | None]:
    everyone = list(config.environments.values())
    return {name: getattr(image_cleaner(env, everyone), "name", None) for name, env in config.environments.items()}


def test_production_cleans_the_shared_repository_and_every_repository_has_one_cleaner():
    config = load_config(CONFIG)
    cleaners = _cleaners(config)
    for name in ("local", "dev", "staging", "production"):  # all on 123456789012's `latticedb`
        assert cleaners[name] == "production", name
    assert cleaners["local-staging"] == cleaners["local-prod"] == "local-prod"  # the route's `latticedb-local-route`
    for n in range(2, 11):  # each test worker's environment has a repository of its own
        assert cleaners[f"local-{n}"] == f"local-{n}"
    everyone = list(config.environments.values())
    deleters = {name for name, env in config.environments.items() if may_delete_images(env, everyone)}
    assert deleters == {"production", "local-prod", *(f"local-{n}" for n in range(2, 11))}


def test_a_shared_repository_nobody_owns_is_cleaned_by_nobody_and_a_lone_one_by_its_user():
    config = load_config(CONFIG)
    everyone = list(config.environments.values())
    unowned = [replace(e, ecr_repository_owner=False) for e in everyone]
    staging = next(e for e in unowned if e.name == "staging")
    assert image_cleaner(staging, unowned) is None
    alone = replace(staging, ecr_repository="latticedb-staging-only")
    assert image_cleaner(alone, unowned) is alone
    # Another account that may pull from it (its registry allowed) makes it shared: nobody deletes then.
    puller = replace(next(e for e in unowned if e.name == "dev"), name="dr", account_id="210987654321",
                     ecr_repository="latticedb-staging-only")
    assert image_cleaner(alone, [*unowned, puller]) is None
    assert image_cleaner(replace(alone, ecr_repository_owner=True), [*unowned, puller]).name == "staging"


def test_two_owners_of_one_repository_are_refused(tmp_path):
    def edit(raw):
        raw["environments"]["staging"]["ecr_repository_owner"] = True

    with pytest.raises(ConfigError, match=r"environments\.production\.ecr_repository_owner: staging and production both own "
                                          r"repository 123456789012\.dkr\.ecr\.us-east-1\.amazonaws\.com/latticedb; only one environment"):
        load_config(_write(tmp_path, edit))

    def copies(raw):
        raw["local_copies"]["names"]["local-staging"]["ecr_repository_owner"] = True

    with pytest.raises(ConfigError, match=r"local_copies\.names\.local-prod\.ecr_repository_owner: local-staging and local-prod both own"):
        load_config(_write(tmp_path, copies))


def test_the_owner_mark_is_a_boolean_and_one_per_repository_not_per_name(tmp_path):
    def edit(raw):
        raw["environments"]["dev"]["ecr_repository_owner"] = "yes"

    with pytest.raises(ConfigError, match=r"environments\.dev\.ecr_repository_owner: must be true or false"):
        load_config(_write(tmp_path, edit))

    def elsewhere(raw):  # the same name in another region is another repository
        raw["environments"]["dev"].update(region="eu-west-1", allowed_registries=["123456789012.dkr.ecr.eu-west-1.amazonaws.com"],
                                          ecr_repository_owner=True)

    config = load_config(_write(tmp_path, elsewhere))
    assert _cleaners(config)["dev"] == "dev" and _cleaners(config)["staging"] == "production"


def _logged(capsys) -> str:
    """The task logger's lines (Airflow's structlog writes them to stdout), joined."""
    captured = capsys.readouterr()
    return captured.out + captured.err


def _operator(name: str):
    from latticedb_deploy.operators.cleanup import CleanupImagesOperator

    op = CleanupImagesOperator(task_id="delete_old_images", environment=name)
    op.__dict__["env"] = load_config(CONFIG).environment(name)  # the run's environment, without a run
    return op


def test_cleanup_in_an_environment_that_does_not_clean_the_repository_deletes_nothing_and_names_the_cleaner(
    monkeypatch, capsys
):
    monkeypatch.setenv("LATTICEDB_CONFIG", str(CONFIG))
    op = _operator("staging")
    monkeypatch.setattr(type(op), "_clean", lambda self, everyone: pytest.fail("staging must not clean production's repository"))
    assert op.run({}) == {"deleted": [], "skipped": True, "cleaned_by": "production"}
    out = _logged(capsys)
    assert "Deleted no image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb is shared" in out, out
    assert "production's role cleans it" in out


def test_cleanup_in_the_owner_cleans(monkeypatch):
    monkeypatch.setenv("LATTICEDB_CONFIG", str(CONFIG))
    op = _operator("production")
    monkeypatch.setattr(type(op), "_clean", lambda self, everyone: {"cleaned": True, "seen": len(everyone)})
    assert op.run({}) == {"cleaned": True, "seen": len(load_config(CONFIG).environments)}


def test_cleanup_of_a_shared_repository_nobody_owns_deletes_nothing_and_says_how_to_fix_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATTICEDB_CONFIG", str(_write(tmp_path, lambda raw: raw["environments"]["production"].pop("ecr_repository_owner"))))
    op = _operator("production")
    assert op.run({}) == {"deleted": [], "skipped": True, "cleaned_by": None}
    assert "no environment cleans it: mark the most protected environment" in _logged(capsys)
