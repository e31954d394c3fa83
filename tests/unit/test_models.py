"""`frozen_model` behaves as `dataclass(frozen=True)`: each case runs on both and compares what a caller sees."""

import copy
import dataclasses
import pickle
from functools import cached_property

import pytest

from latticedb_deploy.models import frozen_model


def _pair(body: dict, fields: list, names: tuple[str, str] = ("Point", "Point")) -> tuple[type, type]:
    """The same class twice: as a real frozen dataclass, and as a frozen_model (named `names`, for pickle)."""
    annotations = {name: typ for name, typ, *_ in fields}

    def make(name: str) -> type:
        defaults = {name: copy.copy(rest[0]) for name, _, *rest in fields if rest}  # a field() is one class's
        return type(name, (), {"__annotations__": dict(annotations), "__module__": __name__, **defaults, **body})

    return dataclasses.dataclass(frozen=True)(make(names[0])), frozen_model(make(names[1]))


FIELDS = [("x", int), ("y", int, 2), ("tags", list, dataclasses.field(default_factory=list))]
REFERENCE, MODEL = _pair({}, FIELDS, ("REFERENCE", "MODEL"))

CALLS = [
    ((1,), {}),
    ((1, 5), {}),
    ((), {"x": 1, "y": 5}),
    ((1,), {"tags": ("a", "b")}),
    ((1, 5, ("c", "d")), {}),
]
BAD_CALLS = [  # (args, kwargs, a word of the error dataclass gives, and of ours)
    ((), {}, "x"),
    ((1,), {"z": 3}, "z"),
    ((1,), {"x": 2}, "x"),
    ((1, 2, {}, 4), {}, "given"),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_construction_fields_equality_hash_and_repr_match_dataclass(args, kwargs):
    ref, own = REFERENCE(*args, **kwargs), MODEL(*args, **kwargs)
    assert dataclasses.asdict(own) == dataclasses.asdict(ref)
    assert [f.name for f in dataclasses.fields(own)] == ["x", "y", "tags"]
    assert repr(own).replace("MODEL", "REFERENCE") == repr(ref)
    assert own == MODEL(*args, **kwargs) and own != MODEL(99) and own != ref  # another class is never equal
    if isinstance(own.tags, tuple):
        assert hash(own) == hash(MODEL(*args, **kwargs)) and len({own, MODEL(*args, **kwargs), MODEL(99, 2, ())}) == 2
    else:  # a list field: unhashable, as with dataclass
        for unhashable in (ref, own):
            with pytest.raises(TypeError, match="unhashable"):
                hash(unhashable)


@pytest.mark.parametrize(("args", "kwargs", "word"), BAD_CALLS)
def test_bad_construction_raises_type_error_naming_the_argument_as_dataclass_does(args, kwargs, word):
    with pytest.raises(TypeError, match=word):
        REFERENCE(*args, **kwargs)
    with pytest.raises(TypeError, match=word):
        MODEL(*args, **kwargs)


def test_assignment_and_deletion_are_refused_and_copies_round_trip():
    own = MODEL(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        own.x = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del own.x
    assert own.x == 1
    assert MODEL(1).tags is not MODEL(1).tags  # default_factory: one new value per instance
    assert dataclasses.replace(own, y=7) == MODEL(1, 7)
    assert pickle.loads(pickle.dumps(MODEL(1, 3, ("a",)))) == MODEL(1, 3, ("a",))
    assert copy.deepcopy(MODEL(1, 3, ["a"])) == MODEL(1, 3, ["a"])


def test_methods_the_class_defines_are_kept_and_cached_properties_work():
    body = {
        "__str__": lambda self: f"<{self.x}>",
        "__repr__": lambda self: "mine",
        "__post_init__": lambda self: object.__setattr__(self, "checked", True),
        "double": cached_property(lambda self: self.x * 2),
    }
    ref_cls, own_cls = _pair(body, [("x", int)])
    ref, own = ref_cls(3), own_cls(3)
    assert (str(own), repr(own), own.checked, own.double) == (str(ref), repr(ref), ref.checked, ref.double) == (
        "<3>", "mine", True, 6)


def test_a_field_outside_init_is_refused_when_the_class_is_made():
    with pytest.raises(TypeError, match="init=False"):
        _pair({}, [("x", int, dataclasses.field(default=0, init=False))])
