"""Four eyes and who may run images from a repository: the rules, without AWS."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import ConfigError, load_config
from latticedb_deploy.operators.approval import same_person

CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def _config(tmp_path, edit) -> Path:
    raw = yaml.safe_load(CONFIG.read_text())
    edit(raw)
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_four_eyes_is_on_for_production_and_off_elsewhere_by_default():
    config = load_config(CONFIG)
    four_eyes = {name: env.four_eyes for name, env in config.environments.items()}
    assert {"local", "dev", "staging", "production", "local-2"} <= set(four_eyes)
    assert four_eyes == {name: name == "production" for name in four_eyes}


def test_four_eyes_without_an_approval_is_a_config_error(tmp_path):
    def edit(raw):
        raw["environments"]["staging"]["approval"] = {"four_eyes": True}

    with pytest.raises(ConfigError, match=r"environments\.staging\.approval\.four_eyes: needs blue_green\.require_approval"):
        load_config(_config(tmp_path, edit))


def test_four_eyes_must_be_a_boolean(tmp_path):
    def edit(raw):
        raw["environments"]["production"]["approval"] = {"four_eyes": "yes"}

    with pytest.raises(ConfigError, match=r"production\.approval\.four_eyes: must be true or false"):
        load_config(_config(tmp_path, edit))


@pytest.mark.parametrize(("responder", "trigger", "same"), [
    ({"id": "alice", "name": "Alice"}, "alice", True),
    ({"id": "7", "name": "alice"}, "alice", True),  # FAB: numeric id, name is the username
    ({"id": "bob", "name": "Bob"}, "alice", False),
    ({"id": "bob", "name": "Bob"}, None, False),  # scheduled run: nobody triggered it
    (None, "alice", False),  # timeout: nobody answered
    ({"id": "", "name": ""}, "", False),
])
def test_same_person_compares_the_trigger_with_the_responders_id_and_name(responder, trigger, same):
    assert same_person(responder, trigger) is same


def test_which_environments_can_run_images_from_a_repository():
    from dataclasses import replace

    from latticedb_deploy.config import can_run_from

    config = load_config(CONFIG)
    local, staging = config.environment("local"), config.environment("staging")
    assert can_run_from(staging, local)  # same repository, this registry allowed
    assert not can_run_from(replace(staging, ecr_repository="other"), local)
    elsewhere = replace(staging, account_id="210987654321", allowed_registries=())
    assert not can_run_from(elsewhere, local)  # without a list, only its own account's registry
    assert can_run_from(replace(elsewhere, allowed_registries=("123456789012.dkr.ecr.us-east-1.amazonaws.com",)), local)
    assert not can_run_from(replace(staging, allowed_registries=("999999999999.dkr.ecr.us-east-1.amazonaws.com",)), local)
