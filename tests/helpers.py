"""Helpers the test modules share: what the differential tests compare, and cache entries
forged by hand."""

from __future__ import annotations

import json

import django
import msgpack
import pytest

from statecache import codec

# -- the differential comparison ----------------------------------------------------------------

OBSERVED = ("error", "stdout", "schema", "rows", "signals", "returned")


def first_difference(expected, actual, path="") -> str:
    if type(expected) is not type(actual):
        return f"{path}: {expected!r:.300} != {actual!r:.300}"
    if isinstance(expected, dict):
        for key in sorted(set(expected) | set(actual), key=str):
            if expected.get(key) != actual.get(key):
                return first_difference(expected.get(key), actual.get(key), f"{path}.{key}")
    if isinstance(expected, (list, tuple)):
        for index, (a, b) in enumerate(zip(expected, actual)):
            if a != b:
                return first_difference(a, b, f"{path}[{index}]")
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} items != {len(actual)} items"
    return f"{path}: {json.dumps(expected)[:300]} != {json.dumps(actual)[:300]}"


def comparable(record: dict) -> dict:
    """What must be identical. On Django < 5.1 vanilla computes the post-migrate state with
    every model rendered and re-rendered in the loop (the slow block statecache exists to
    remove), so its post_migrate registry lists models in the order of their last re-render;
    statecache's lists them in state order, as Django 5.1+ does. Same models, other order."""
    record = {key: record[key] for key in OBSERVED}
    if django.VERSION < (5, 1) and "post_migrate" in record["signals"]:
        signals = dict(record["signals"])
        signals["post_migrate"] = sorted(signals["post_migrate"])
        record["signals"] = signals
    return record


def assert_same(expected: dict, actual: dict, what: str) -> None:
    expected, actual = comparable(expected), comparable(actual)
    for key in OBSERVED:
        if expected[key] != actual[key]:
            pytest.fail(f"{what}: {first_difference(expected[key], actual[key], key)}")


# -- forged entries -----------------------------------------------------------------------------


def ext(code: int, value) -> msgpack.ExtType:
    return msgpack.ExtType(code, msgpack.packb(value, use_bin_type=True))


def forged_state(field=None, options=None, managers=()) -> bytes:
    """The bytes of a ModelState as codec.encode_model_state lays them out, built by hand."""
    char = ext(codec.FIELD, ["django.db.models.fields:CharField", [], {"max_length": 10}])
    return msgpack.packb(
        [
            codec.CODEC_VERSION,
            "testapp",
            "Forged",
            [["name", field if field is not None else char]],
            options or {},
            ext(codec.TUPLE, []),
            [
                [name, msgpack.packb(manager, use_bin_type=True), i]
                for i, (name, manager) in enumerate(managers)
            ],
        ],
        use_bin_type=True,
    )
