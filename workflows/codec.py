"""Reading the shared messages of `types` back from plain JSON, fast.

temporalio's `value_to_type` reads any type, and works out a dataclass's fields again for every
value it reads: a request's state costs about a millisecond that way, which the web pays for
each new version it draws and the worker for each projection. Here each type's reader is worked
out once (about 30 times faster), for the kinds of field `types` uses: dataclasses, enums,
datetimes, lists, dicts, optionals and plain JSON values. What it reads is our own JSON (the
read model's snapshots, our own payloads), as `AdvancedJSONEncoder` wrote it; what comes from
outside is read strictly by `rules`, from payloads typed as plain JSON.

`PayloadConverter` is Temporal's default with this reader, for the clients of the web and the
worker; any type it cannot read goes to temporalio's own.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, TypeVar, cast

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

T = TypeVar("T")
Reader = Callable[[Any], Any]


def decode(cls: type[T], value: Any) -> T:
    """`value`, as JSON read it, as an instance of `cls`."""
    result: T = reader(cast(Hashable, cls))(value)
    return result


def encode(value: Any) -> Any:
    """`value` (a dataclass of `types`, say) as plain JSON, as `decode` reads it back."""
    return json.loads(json.dumps(value, cls=AdvancedJSONEncoder))


def _same(value: Any) -> Any:
    return value


@functools.cache
def reader(hint: Any) -> Reader:
    """A function that reads a JSON value as `hint`, worked out once per type."""
    origin = typing.get_origin(hint)
    if hint is Any or hint in (str, int, float, bool, type(None)):
        return _same
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(others) != 1:
            raise TypeError(f"Cannot read {hint}: only `X | None` unions are read")
        inner = reader(others[0])
        return lambda value: None if value is None else inner(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        each = reader(item)
        return list if each is _same else lambda value: [each(v) for v in value]
    if origin is dict:
        _, item = typing.get_args(hint)
        each = reader(item)
        return dict if each is _same else lambda value: {k: each(v) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if hint is datetime:
        return datetime.fromisoformat
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_reader(hint)
    raise TypeError(f"Cannot read {hint}")


def _dataclass_reader(cls: type) -> Reader:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, reader(hints[f.name])) for f in dataclasses.fields(cls) if f.init]

    def read(value: dict[str, Any]) -> Any:
        # A field left out takes its default; one this code does not know is left out.
        return cls(**{name: read_field(value[name]) for name, read_field in fields if name in value})

    return read


@functools.cache
def _readable(hint: Any) -> bool:
    try:
        reader(hint)
    except TypeError:
        return False
    return True


class _JSONPlain(JSONPlainPayloadConverter):
    """Temporal's JSON payload converter, reading what it can with `reader`."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        if type_hint is None or not _readable(type_hint):
            return super().from_payload(payload, type_hint)
        try:
            return reader(type_hint)(json.loads(payload.data))
        except (ValueError, TypeError, KeyError, AttributeError):
            return super().from_payload(payload, type_hint)  # which says what is wrong


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converter, with `_JSONPlain` for its JSON."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _JSONPlain() if isinstance(each, JSONPlainPayloadConverter) else each
                for each in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
