"""Small value classes without `dataclasses`' start-up cost.

`@dataclass` writes each class's `__init__`, `__eq__`, `__repr__`, … as source and compiles it
with `exec` when the class is created (about 0.5–1 ms a class), and `import dataclasses` pulls in
`inspect`, `ast` and `dis` (about 10 ms).  A one-shot `celery-composer depsolve` creates a dozen
such classes before it solves anything, so together they were a tenth of its CPU time.

`Record` gives the same shape from the class's annotations, with generic methods that read the
field list at call time: nothing is compiled when a class is made.  What it supports is what this
project uses: defaults, `field(default_factory=…, compare=…)`, `frozen=True`, `__post_init__`,
a class's own `__init__` (kept, as dataclasses keeps it), equality and (when frozen) hashing
over the compared fields, `repr`, and `replace(record, **changes)`.  Type checkers read it as a
dataclass (`dataclass_transform`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

_R = TypeVar("_R", bound="Record")


class _Field:
    __slots__ = ("default_factory", "compare")

    def __init__(self, default_factory: Callable[[], Any], compare: bool) -> None:
        self.default_factory = default_factory
        self.compare = compare


def field(*, default_factory: Callable[[], Any], compare: bool = True) -> Any:
    """A field whose default is made fresh for every record (a list, a dict, …)."""
    return _Field(default_factory, compare)


_MISSING = object()


@dataclass_transform(field_specifiers=(field,))
class Record:
    """Base of a value class: `class Point(Record, frozen=True): x: int; y: int = 0`."""

    _record_fields: tuple[str, ...] = ()
    _record_defaults: dict[str, Any] = {}
    _record_compared: tuple[str, ...] = ()
    _record_frozen: bool = False

    def __init_subclass__(cls, *, frozen: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = tuple(name for name, annotation in cls.__dict__.get("__annotations__", {}).items()
                      if not str(annotation).startswith(("ClassVar", "typing.ClassVar")))
        defaults: dict[str, Any] = {}
        compared = []
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            if isinstance(value, _Field):
                delattr(cls, name)  # the class attribute would shadow a missing instance value
                if value.compare:
                    compared.append(name)
            else:
                compared.append(name)
            if value is not _MISSING:
                defaults[name] = value
        cls._record_fields = names
        cls._record_defaults = defaults
        cls._record_compared = tuple(compared)
        cls._record_frozen = frozen
        if "__init__" not in cls.__dict__:
            cls.__init__ = Record._init  # type: ignore[assignment,method-assign]
        if frozen and "__hash__" not in cls.__dict__:
            cls.__hash__ = Record._hash  # type: ignore[assignment,method-assign]
        elif not frozen:
            cls.__hash__ = None  # type: ignore[assignment]  # as dataclasses: mutable is unhashable

    def _init(self, *args: Any, **kwargs: Any) -> None:
        names = self._record_fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} positional arguments "
                            f"but {len(args)} were given")
        values = dict(zip(names, args, strict=False))  # fewer args than fields: defaults
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                                f"{key!r}")
            if key in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument "
                                f"{key!r}")
            values[key] = value
        defaults = self._record_defaults
        for name in names:
            if name in values:
                value = values[name]
            elif name in defaults:
                value = defaults[name]
                if isinstance(value, _Field):
                    value = value.default_factory()
            else:
                raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
            object.__setattr__(self, name, value)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._record_compared)

    def _hash(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_fields)
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: Any) -> None:
        if self._record_frozen:
            raise AttributeError(f"cannot assign to field {name!r} of a frozen "
                                 f"{type(self).__name__}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._record_frozen:
            raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")
        object.__delattr__(self, name)


def replace(record: _R, **changes: Any) -> _R:
    """A copy of `record` with some fields changed (`__init__` and `__post_init__` run again)."""
    values = {name: getattr(record, name) for name in record._record_fields}
    values.update(changes)
    return type(record)(**values)


def fields(cls: type[Record] | Record) -> tuple[str, ...]:
    """The field names, in declaration order."""
    return cls._record_fields
