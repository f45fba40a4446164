"""The plain-data codec between the grader and the student's process: exact round trips
for plain data, and nothing else gets through (no pickles, no objects, no malformed arrays)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from scalinglab.grading import wire


def roundtrip(value, allow_pickle=False):
    data = json.loads(json.dumps(wire.encode(value, allow_pickle=allow_pickle)))
    return wire.decode(data, allow_pickle=allow_pickle)


@pytest.mark.parametrize(
    "value",
    [
        None, True, 3, -(2**70), 2.5, float("inf"), 1 + 2j, "text",
        [1, [2.0, "x"]], (1, (2, 3)), {"a": 1, 2: (3, 4), (5, "b"): None}, {1, 2}, frozenset({3}),
    ],
)  # fmt: skip
def test_plain_values_round_trip_exactly(value):
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array([[True, False]]),
        np.arange(6, dtype=np.int8)[::2],  # not contiguous
        np.zeros((0, 3)),
        np.array(["ab", "c"]),
        np.array(3.5),  # 0-d
        np.array([1 + 1j], dtype=np.complex64),
    ],
)
def test_arrays_keep_dtype_shape_and_values(array):
    back = roundtrip(array)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)


def test_numpy_scalars_stay_scalars():
    for scalar in (np.float64(3.0), np.int64(-2), np.bool_(True), np.float32(0.25)):
        back = roundtrip(scalar)
        assert type(back) is type(scalar) and back == scalar and np.ndim(back) == 0
        assert f"{back:.3e}" == f"{scalar:.3e}"  # formats like the original


def test_tensors_come_back_as_tensors():
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    back = roundtrip(t)
    assert isinstance(back, torch.Tensor) and torch.equal(back, t)
    half = roundtrip(torch.ones(2, dtype=torch.bfloat16))
    assert half.dtype == torch.float32 and torch.equal(half, torch.ones(2))


class Sneaky:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    "value", [Sneaky(), [Sneaky()], np.array([Sneaky()], dtype=object), lambda x: x, print]
)
def test_objects_are_refused_from_the_student(value):
    with pytest.raises(wire.WireError):
        wire.encode(value)


def test_pickles_and_malformed_data_are_refused_by_the_grader():
    payload = wire.encode(Sneaky(), allow_pickle=True)  # grader -> student only
    assert payload["__t"] == "pickle"
    with pytest.raises(wire.WireError, match="forbidden"):
        wire.decode(payload)
    assert isinstance(wire.decode(payload, allow_pickle=True), Sneaky)
    bad = wire.encode(np.arange(4.0))
    for change in ({"dtype": "|O"}, {"shape": [5]}, {"shape": [-4]}, {"b64": "!!"}):
        with pytest.raises(wire.WireError):
            wire.decode({**bad, **change})
    with pytest.raises(wire.WireError):
        wire.decode({"__t": "dict", "v": [[[1], 2]]})  # unhashable key
    deep = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode(deep)
    assert pickle.loads(pickle.dumps(1)) == 1  # (pickle itself is fine; the grader never uses it)
