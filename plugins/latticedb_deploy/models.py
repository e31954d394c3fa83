"""`frozen_model`: a frozen dataclass whose methods are shared, not compiled per class.

`dataclass(frozen=True)` writes six methods as source (`__init__`, `__eq__`, `__hash__`, `__repr__`,
`__setattr__`, `__delattr__`) and compiles them, for every class. The package has 28 such classes
that every DAG file's first parse imports afresh (a dag-processor forks a new parser per file, every
parse): 168 compiles, about 8 ms of the config module's 11 ms import. Here the six are generic
functions over the class's field list, written once; dataclass() only records the fields, so
`dataclasses.fields`, `replace` and `asdict` work as before. They behave as dataclass's own
(tests/unit/test_models.py). A method the class defines itself is kept, as dataclass keeps it.
"""

from __future__ import annotations

from dataclasses import MISSING, FrozenInstanceError, dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def frozen_model(cls: T) -> T:
    """`@dataclass(frozen=True)`, with shared methods (see the module docstring)."""
    cls = dataclass(init=False, eq=False, repr=False)(cls)
    own = cls.__dict__
    if any(not f.init for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: frozen_model does not support field(init=False)")
    cls._model_fields = tuple((f.name, f.default, f.default_factory) for f in fields(cls))
    cls._model_names = tuple(f.name for f in fields(cls))
    for name, method in (("__init__", _init), ("__eq__", _eq), ("__hash__", _hash), ("__repr__", _repr)):
        if name not in own or (name == "__hash__" and own[name] is None):
            setattr(cls, name, method)
    cls.__setattr__, cls.__delattr__ = _setattr, _delattr
    return cls


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    specs = self._model_fields
    if len(args) > len(specs):
        raise TypeError(f"{type(self).__name__}() takes {len(specs)} arguments, {len(args)} were given")
    for (name, _, _), value in zip(specs[: len(args)], args, strict=True):
        if name in kwargs:
            raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
        object.__setattr__(self, name, value)
    for name, default, factory in specs[len(args):]:
        if name in kwargs:
            object.__setattr__(self, name, kwargs.pop(name))
        elif default is not MISSING:
            object.__setattr__(self, name, default)
        elif factory is not MISSING:
            object.__setattr__(self, name, factory())
        else:
            raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _values(self: Any) -> tuple:
    return tuple(getattr(self, name) for name in self._model_names)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._model_names)
    return f"{self.__class__.__qualname__}({args})"


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")
