"""latticedb_control names the deployment it means (`deployment`): its shape, what it matches, and the link
in a deployment's Slack messages that names the run sending them."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from latticedb_deploy.control import TARGET_PATTERN, ControlRefused, Target, parse_target

RUN = "manual__2026-11-26T07:42:36.123456+00:00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        (f"latticedb_deploy_canary/{RUN}", Target(run_id=RUN, dag_id="latticedb_deploy_canary")),
        (f"  latticedb_deploy_rolling/{RUN} ", Target(run_id=RUN, dag_id="latticedb_deploy_rolling")),
        (RUN, Target(run_id=RUN)),
        # progressive delivery and the nightly trigger deployments with run ids of their own
        ("manual__2026-11-26T07:42:36+00:00__stage_staging.deploy", Target(run_id="manual__2026-11-26T07:42:36+00:00__stage_staging.deploy")),
    ],
)
def test_the_deployment_a_control_run_names(text, expected):
    assert parse_target(text) == expected
    assert re.fullmatch(TARGET_PATTERN, text or "")  # the form accepts what the operator accepts


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("latticedb_deploy_canary/manual__1/extra", "is not a deployment run: give"),
        ("manual 1", "is not a deployment run: give"),
        ("latticedb_deploy_canary/", "is not a deployment run: give"),
        ("/manual__1", "is not a deployment run: give"),
        ("https://airflow/dags/latticedb_deploy_canary/runs/manual__1", "is not a deployment run: give"),
        ("latticedb_service/manual__1", "names DAG 'latticedb_service', which is not a deployment DAG"),
        ("latticedb_rollback/manual__1", "not a deployment DAG"),
    ],
)
def test_a_malformed_deployment_is_refused_before_anything_is_read(text, match):
    with pytest.raises(ControlRefused, match=match):
        parse_target(text)
    if "not a deployment DAG" not in match:
        assert not re.fullmatch(TARGET_PATTERN, text)  # and the trigger form refuses it when the run is created


def test_a_target_matches_only_its_run():
    owner = f"latticedb_deploy_canary/{RUN}"
    assert Target(run_id=RUN, dag_id="latticedb_deploy_canary").matches(owner)
    assert Target(run_id=RUN).matches(owner)
    assert not Target(run_id=RUN, dag_id="latticedb_deploy_blue_green").matches(owner)
    assert not Target(run_id="manual__2026-11-26T08:00:00+00:00").matches(owner)
    assert not Target(run_id=RUN[:-6]).matches(owner)  # no prefix matching
    assert str(Target(run_id=RUN, dag_id="latticedb_deploy_canary")) == owner and str(Target(run_id=RUN)) == RUN


def _conf(links: dict[str, str]) -> tuple[str, dict]:
    (label, url), = links.items()
    query = parse_qs(urlsplit(url).query)
    return label, json.loads(query["conf"][0])


def test_the_control_link_names_the_deployment_that_sent_it():
    from latticedb_deploy.notify import control_form_link

    owner = f"latticedb_deploy_canary/{RUN}"
    label, conf = _conf(control_form_link("staging", owner))
    assert conf == {"environment": "staging", "deployment": owner}
    assert "staging" in label and owner in label
    assert parse_target(conf["deployment"]).matches(owner)  # what the form gets back is what the control accepts
    assert _conf(control_form_link("staging"))[1] == {"environment": "staging"}  # outside a task: environment only


def test_the_control_link_from_inside_a_task_names_its_run():
    """The deployment's own steps call control_form_link(env) (operators/traffic.py): the run comes from the
    task's context."""
    from airflow.sdk.execution_time.context import set_current_context

    from latticedb_deploy.notify import control_form_link

    context = {"dag": SimpleNamespace(dag_id="latticedb_deploy_canary"), "run_id": RUN, "ti": None}
    with set_current_context(context):
        _, conf = _conf(control_form_link("local"))
    assert conf == {"environment": "local", "deployment": f"latticedb_deploy_canary/{RUN}"}
