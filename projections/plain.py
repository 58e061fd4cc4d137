"""Events and state as plain data with field names, and back.

Events and the values they carry are array-like on the wire (see ``events._Event``). People,
JSON outputs and upcasters deal in names: ``as_plain`` turns any struct into dicts with field
names (an event's tag under ``type``), recursively; ``from_plain`` is its inverse for an
event given as such a dict, the shape upcasters lift old payloads into.
"""

from __future__ import annotations

from typing import Any

import msgspec

from projections.events import Event

_INFO = msgspec.inspect.type_info(Event)


def as_plain(value: Any) -> Any:
    """Plain data with field names, even for array-like Structs (which encode as lists)."""
    if isinstance(value, msgspec.Struct):
        fields = {name: as_plain(getattr(value, name)) for name in value.__struct_fields__}
        tag = value.__struct_config__.tag
        return {"type": tag, **fields} if isinstance(tag, str) else fields
    if isinstance(value, dict):
        return {str(key): as_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(item) for item in value]
    return msgspec.to_builtins(value)


def fields_of(event: Event) -> dict[str, Any]:
    """An event's fields by name, without its tag."""
    plain: dict[str, Any] = as_plain(event)
    plain.pop("type")
    return plain


def from_plain(data: dict[str, Any]) -> Event:
    """The event a named-fields dict (with its ``type``) describes; ValidationError if none."""
    event: Event = msgspec.convert(_positional(data, _INFO), Event)
    return event


def _positional(value: Any, info: msgspec.inspect.Type) -> Any:
    """``value`` with every dict that stands for an array-like struct made an array, in field
    order, a missing field given its default (and left missing, for convert to name, when it
    has none)."""
    mi = msgspec.inspect
    if isinstance(info, mi.UnionType):
        for option in info.types:
            if (
                isinstance(option, mi.StructType)
                and isinstance(value, dict)
                and (option.tag is None or value.get(option.tag_field or "") == option.tag)
            ):
                return _positional(value, option)
        return value
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        out = [info.tag] if info.tag is not None else []
        for field in info.fields:
            if field.encode_name in value:
                out.append(_positional(value[field.encode_name], field.type))
            elif field.default is not msgspec.NODEFAULT:
                out.append(field.default)
            elif field.default_factory is not msgspec.NODEFAULT:
                out.append(field.default_factory())
            else:
                break
        return out
    if isinstance(info, mi.ListType) and isinstance(value, list):
        return [_positional(item, info.item_type) for item in value]
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        return {key: _positional(item, info.value_type) for key, item in value.items()}
    return value
