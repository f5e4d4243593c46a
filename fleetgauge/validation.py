"""The rules a point follows before it may reach a store, and the error that names a break.

Every point written (sampled, pushed, seeded) passes :func:`validate_point`;
names and tag values pass :func:`validate_name`. The names themselves are in
:mod:`fleetgauge.catalogue`.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetgauge.catalogue import (
    DEPLOYMENT,
    MEASUREMENTS,
    PIPELINE,
    RESERVED_TAG_KEYS,
    Family,
    Field,
    Measurement,
    Point,
)

__all__ = [
    "InvalidPoint",
    "MAX_NAME_LENGTH",
    "forget_checked_tags",
    "validate_name",
    "validate_point",
]

MAX_NAME_LENGTH = 256
"""Longest measurement/tag/field name or tag value accepted, in characters."""


class InvalidPoint(ValueError):
    """A point that breaks the data model; the message names the part at fault."""


def validate_name(kind: str, value: object) -> str:
    """Check one name or tag value: a non-empty string of valid Unicode, bounded length."""
    if not isinstance(value, str):
        raise InvalidPoint(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidPoint(f"{kind} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidPoint(f"{kind} is {len(value)} characters long (limit {MAX_NAME_LENGTH})")
    if "\x00" in value:
        raise InvalidPoint(f"{kind} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPoint(f"{kind} is not valid Unicode (lone surrogate)") from None
    return value


_CHECKED_TAGS: dict[tuple[object, ...], None] = {}
_MAX_CHECKED_TAGS = 100_000
_FIELD_TYPES = {name: {f.name: f for f in m.fields} for name, m in MEASUREMENTS.items()}


def forget_checked_tags() -> None:
    """Forget which tag sets passed (each is checked again on its next point)."""
    _CHECKED_TAGS.clear()


def validate_point(point: Point) -> Measurement:
    """Check a point against the catalogue before it may reach a store.

    Raises InvalidPoint naming the measurement, tag or field at fault. A tag set
    that passed once is remembered (bounded), so the points of a known series
    only have their fields and time checked.
    """
    m = MEASUREMENTS.get(point.measurement)
    if m is None:
        raise InvalidPoint(f"unknown measurement {point.measurement!r}")
    try:
        key = (point.measurement, *point.tags.items())
        known = key in _CHECKED_TAGS
    except (TypeError, AttributeError):  # unhashable values or no mapping: the slow path says
        key, known = None, False
    if not known:
        _check_tags(m, point.tags)
        if key is not None:
            if len(_CHECKED_TAGS) >= _MAX_CHECKED_TAGS:
                _CHECKED_TAGS.clear()
            _CHECKED_TAGS[key] = None
    if not point.fields:
        raise InvalidPoint(f"{m.name} point has no fields")
    fields = _FIELD_TYPES[m.name]
    for name, value in point.fields.items():
        f = fields.get(name)
        if f is None:
            raise InvalidPoint(f"measurement {m.name!r} has no field {name!r}")
        if type(value) is not float or f.type is not float or value - value != 0.0:
            _check_field_value(m, f, value)
    if type(point.time_ns) is not int:
        raise InvalidPoint(f"{m.name} point time must be integer nanoseconds")
    return m


def _check_tags(m: Measurement, tags: Mapping[str, str]) -> None:
    if not isinstance(tags, Mapping):
        raise InvalidPoint(f"{m.name} point tags must be a mapping of names to text")
    for key, value in tags.items():
        validate_name("tag key", key)
        if key in RESERVED_TAG_KEYS or key in m.field_names:
            raise InvalidPoint(f"tag key {key!r} is reserved in measurement {m.name!r}")
        validate_name(f"tag {key!r}", value)
    for key in m.required_tags:
        if key not in tags:
            raise InvalidPoint(f"{m.name} point lacks the {key!r} tag")
    if m.family in (Family.PIPELINE, Family.LIST) and not (
        tags.get(DEPLOYMENT) or tags.get(PIPELINE)
    ):
        raise InvalidPoint(f"{m.name} point needs a 'deployment' or 'pipeline' tag")


def _check_field_value(m: Measurement, f: Field, value: object) -> None:
    if f.type is str:
        if not isinstance(value, str):
            raise InvalidPoint(f"{m.name}.{f.name} must be a string")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPoint(f"{m.name}.{f.name} must be a number, got {type(value).__name__}")
    if f.type is int and not isinstance(value, int):
        raise InvalidPoint(f"{m.name}.{f.name} must be an integer")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidPoint(f"{m.name}.{f.name} must be finite, got {value}")
