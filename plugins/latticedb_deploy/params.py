"""A run's parameters as values: the one place operators and callbacks read them.

Operators take an argument for each run parameter they use (`strict`, `auto_rollback`, `notify`, ...)
and leave it unset (None) by default: unset means "the run's param of that name", read from
`context["params"]`. Those values were validated against the DAG's Param schema when the run was
created, so they already are booleans, integers, lists or None: nothing re-parses a rendered
"{{ params.x }}" string any more. A value given to the constructor wins (an operator reused outside
the factory): a Python value, an XComArg, or a template that rendered to a string, of which only the
spellings Airflow itself renders are accepted ("True"/"False", a whole number, "None" or "" for
unset); anything else is refused with an error naming the field, rather than guessed at.

Why not `render_template_as_native_obj=True` on the DAGs: it renders *every* templated field
natively, and Jinja's native rendering literal-evaluates strings, so a reason "123" would become an
int and "None" None, and the approval's subject and body would change type whenever they happened to
look like a Python literal. Reading the params directly changes only the fields that are values.
"""

from __future__ import annotations

from typing import Any

_UNSET_TEXT = ("", "none")


class ParamError(ValueError):
    """A value given for a run parameter that is not of the parameter's type."""


def run_param(context: Any, name: str) -> Any:
    """The run's validated param `name`, or None when the run (or a hand-built context) has none."""
    params = context.get("params") if context else None
    return params.get(name) if params else None


def given_or_param(given: Any, context: Any, name: str) -> Any:
    """`given` (an operator's constructor value) when set, else the run's param `name`."""
    return given if given is not None else run_param(context, name)


def as_bool(value: Any, *, name: str, default: bool) -> bool:
    """A boolean param value; None (unset) is `default`."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _UNSET_TEXT:
            return default
        if text in ("true", "false"):
            return text == "true"
    raise ParamError(f"{name} must be true or false (or unset), not {value!r}")


def as_int(value: Any, *, name: str, default: int | None) -> int | None:
    """A whole-number param value; None (unset) is `default`."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise ParamError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _UNSET_TEXT:
            return default
        try:
            return int(text)
        except ValueError:
            pass
    raise ParamError(f"{name} must be a whole number (or unset), not {value!r}")


def flag(given: Any, context: Any, name: str, default: bool) -> bool:
    """The boolean `name`: the constructor's value, else the run's param, else `default`."""
    return as_bool(given_or_param(given, context, name), name=name, default=default)


def number(given: Any, context: Any, name: str, default: int | None) -> int | None:
    """The whole number `name`: the constructor's value, else the run's param, else `default`."""
    return as_int(given_or_param(given, context, name), name=name, default=default)


def notify_enabled(given: Any, context: Any) -> bool:
    """Whether a run's notifications are on (`notify`, default true)."""
    return flag(given, context, "notify", True)
