"""Run params are values: an operator's explicit value, else the run's validated param, else a default."""

from __future__ import annotations

import pytest

from latticedb_deploy.params import ParamError, as_bool, as_int, flag, given_or_param, notify_enabled, number


def test_an_unset_argument_reads_the_runs_param():
    context = {"params": {"strict": True, "auto_rollback": False, "tolerated_failures": 2}}
    assert flag(None, context, "strict", False) is True
    assert flag(None, context, "auto_rollback", True) is False
    assert number(None, context, "tolerated_failures", 0) == 2


def test_an_explicit_value_wins_over_the_param():
    context = {"params": {"strict": True, "tolerated_failures": 2, "target_revision": "7"}}
    assert flag(False, context, "strict", True) is False
    assert number(0, context, "tolerated_failures", 5) == 0
    assert given_or_param("latticedb-task:3", context, "target_revision") == "latticedb-task:3"


def test_a_param_that_is_null_or_missing_is_the_default():
    assert flag(None, {"params": {"strict": None}}, "strict", True) is True
    assert flag(None, {"params": {}}, "strict", False) is False
    assert flag(None, {}, "require_approval", True) is True  # a hand-built context without params
    assert number(None, {"params": {"bake_seconds": None}}, "bake_seconds", 30) == 30
    assert notify_enabled(None, {"params": {}}) is True
    assert notify_enabled(None, {"params": {"notify": False}}) is False


def test_a_template_rendered_to_a_string_is_read_as_airflow_renders_it():
    """An operator reused in a DAG without native rendering may be given "{{ params.x }}": Airflow renders
    True/False/None/numbers with these spellings, and only these are accepted."""
    assert as_bool("True", name="x", default=False) is True and as_bool("false", name="x", default=True) is False
    assert as_bool("None", name="x", default=True) is True and as_bool("", name="x", default=False) is False
    assert as_int("30", name="x", default=None) == 30 and as_int("None", name="x", default=7) == 7


@pytest.mark.parametrize("value", ["on", "yes", "1", "none-of-these", 1, 0.0])
def test_anything_else_for_a_boolean_is_refused_naming_the_field(value):
    """Four parsers used to disagree on "on", "none" and "1"; one rule now, and guessing is not it."""
    with pytest.raises(ParamError, match="strict must be true or false"):
        flag(value, {}, "strict", False)


@pytest.mark.parametrize("value", ["ten", True, 2.5, [3]])
def test_anything_else_for_a_number_is_refused_naming_the_field(value):
    with pytest.raises(ParamError, match="tolerated_failures must be a whole number"):
        number(value, {}, "tolerated_failures", 0)
