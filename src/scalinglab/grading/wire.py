"""Plain data between the trusted grader and the student's sandboxed interpreter.

The grader decides every verdict itself, from values the student's code returned. Those
values cross a process boundary as *plain data* only -- numbers, strings, lists, tuples,
dicts, sets, NumPy arrays and scalars, torch tensors -- encoded as JSON with tagged
objects. Decoding never runs code and never unpickles: whatever the student's process
sends, the grader gets inert values (or a :class:`WireError`).

The other direction (arguments the grader passes to a student's function) may also carry
pickled objects, a trained model say: unpickling happens in the student's process, on data
the grader made, so it endangers nobody.

Messages are framed as a 16-byte header -- the body's length and the message's id, 8-byte
big-endian each -- followed by the body, UTF-8 JSON. The id in the header lets the grader
discard a stale or forged reply without reading it whole; a reply (student to grader) is
at most :data:`MAX_REPLY_BYTES` and holds at most :data:`MAX_CONTAINERS` lists and dicts,
so parsing one costs the grader a bounded amount of memory.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys
from typing import Any

import numpy as np

MAX_MESSAGE_BYTES = 64 * 2**20  # a message larger than this is refused
# Replies from the student's code: 32 MiB holds a float64 array of 3 million numbers (as
# base64); 250,000 lists/dicts cost the parser tens of MB, where a reply of 64 MiB of nested
# empty lists cost it 3 GB. Return arrays, not millions of small lists.
MAX_REPLY_BYTES = 32 * 2**20
MAX_CONTAINERS = 250_000
HEADER_BYTES = 16
MAX_DEPTH = 64  # nesting of lists/dicts
# NumPy dtype kinds that are plain data: bool, signed/unsigned int, float, complex,
# fixed-width unicode and bytes. Object arrays (kind "O") and structured types are not.
_PLAIN_KINDS = frozenset("biufcUS")
_TAG = "__t"


class WireError(ValueError):
    """A value that cannot cross the boundary (or a malformed message)."""


def encode(obj: Any, allow_pickle: bool = False) -> Any:
    """``obj`` as a JSON-serialisable structure. Objects that are not plain data raise
    :class:`WireError`, or are pickled when ``allow_pickle`` (grader to student only)."""
    return _encode(obj, allow_pickle, 0)


def _encode(obj: Any, allow_pickle: bool, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int) and type(obj) in (int, bool):
        return obj
    if type(obj) is float:
        return obj
    if type(obj) is complex:
        return {_TAG: "complex", "re": obj.real, "im": obj.imag}
    if isinstance(obj, np.ndarray) and obj.dtype.kind in _PLAIN_KINDS:
        return {_TAG: "nd", **_array_fields(obj)}
    if isinstance(obj, np.generic) and obj.dtype.kind in _PLAIN_KINDS:
        return {_TAG: "npscalar", **_array_fields(np.asarray(obj))}
    if _is_torch_tensor(obj):
        return {_TAG: "tensor", "nd": _encode(_tensor_to_numpy(obj), allow_pickle, depth + 1)}
    children = depth + 1
    if type(obj) is list:
        return [_encode(v, allow_pickle, children) for v in obj]
    if type(obj) is tuple:
        return {_TAG: "tuple", "v": [_encode(v, allow_pickle, children) for v in obj]}
    if type(obj) in (set, frozenset):
        return {_TAG: type(obj).__name__, "v": [_encode(v, allow_pickle, children) for v in obj]}
    if type(obj) is dict:
        return {
            _TAG: "dict",
            "v": [
                [_encode(k, allow_pickle, children), _encode(v, allow_pickle, children)]
                for k, v in obj.items()
            ],
        }
    if allow_pickle:
        try:
            payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 -- lambdas, open files, ...
            raise WireError(f"cannot pass a {type(obj).__name__} to student code: {exc}") from exc
        return {_TAG: "pickle", "b64": base64.b64encode(payload).decode("ascii")}
    raise WireError(
        f"a {type(obj).__module__}.{type(obj).__qualname__} object is not plain data "
        "(return numbers, strings, lists, tuples, dicts, NumPy arrays or torch tensors)"
    )


def _array_fields(arr: np.ndarray) -> dict:
    arr = np.array(arr, order="C", copy=True)  # (np.ascontiguousarray would make 0-d arrays 1-d)
    return {
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
        "b64": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def _is_torch_tensor(obj: Any) -> bool:
    torch = _loaded_torch()
    return torch is not None and isinstance(obj, torch.Tensor)


def _loaded_torch():
    """torch if this process has already imported it (never imports it just to check)."""
    return sys.modules.get("torch")


def _tensor_to_numpy(t) -> np.ndarray:
    torch = _loaded_torch()
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.resolve_conj().resolve_neg().numpy()


def decode(data: Any, allow_pickle: bool = False) -> Any:
    """Inverse of :func:`encode`. Refuses pickles unless ``allow_pickle`` (student side)."""
    return _decode(data, allow_pickle, 0)


def decode_for_tests(data: Any) -> Any:
    """A value the student's code returned, in the types the course's tests are written
    for, so that an answer is judged by its value whatever legitimate type carries it:
    a torch tensor (with or without ``requires_grad``, any device) becomes a NumPy array
    of its dtype, and a 0-d array, 0-d tensor or NumPy scalar becomes the Python scalar
    (``float``, ``int``, ``bool``, ``complex``, ``str``) of the same value. Arrays of one or
    more dimensions keep their dtype (a float32 answer is judged at float32 precision)."""
    return _as_test_value(decode(data))


def _as_test_value(value: Any) -> Any:
    if _is_torch_tensor(value):
        value = _tensor_to_numpy(value)
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else value
    if isinstance(value, np.generic):
        return value.item()
    if type(value) is list:
        return [_as_test_value(v) for v in value]
    if type(value) is tuple:
        return tuple(_as_test_value(v) for v in value)
    if type(value) is dict:
        return {k: _as_test_value(v) for k, v in value.items()}
    return value


def _decode(data: Any, allow_pickle: bool, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_decode(v, allow_pickle, depth + 1) for v in data]
    if not isinstance(data, dict) or not isinstance(data.get(_TAG), str):
        raise WireError("malformed value")
    tag = data[_TAG]
    children = depth + 1
    if tag == "complex":
        return complex(float(data["re"]), float(data["im"]))
    if tag == "nd":
        return _array_from_fields(data)
    if tag == "npscalar":
        return _array_from_fields(data)[()]
    if tag == "tensor":
        array = _decode(data["nd"], allow_pickle, children)
        if not isinstance(array, np.ndarray):
            raise WireError("malformed tensor")
        if array.dtype.kind not in "biufc":
            return array
        import torch

        return torch.from_numpy(np.array(array))
    if tag == "tuple":
        return tuple(_decode(v, allow_pickle, children) for v in _as_list(data["v"]))
    if tag in ("set", "frozenset"):
        items = [_decode(v, allow_pickle, children) for v in _as_list(data["v"])]
        try:
            return set(items) if tag == "set" else frozenset(items)
        except TypeError as exc:
            raise WireError(f"unhashable set item: {exc}") from exc
    if tag == "dict":
        out = {}
        for pair in _as_list(data["v"]):
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("malformed dict")
            key = _decode(pair[0], allow_pickle, children)
            try:
                out[key] = _decode(pair[1], allow_pickle, children)
            except TypeError as exc:
                raise WireError(f"unhashable dict key: {exc}") from exc
        return out
    if tag == "pickle" and allow_pickle:
        return pickle.loads(base64.b64decode(data["b64"]))
    raise WireError(f"unknown or forbidden value tag {tag!r}")


def _as_list(v) -> list:
    if not isinstance(v, list):
        raise WireError("malformed value")
    return v


def _array_from_fields(data: dict) -> np.ndarray:
    try:
        dtype = np.dtype(str(data["dtype"]))
        shape = tuple(int(s) for s in data["shape"])
        raw = base64.b64decode(data["b64"], validate=True)
    except Exception as exc:  # noqa: BLE001 -- any malformed field is the same refusal
        raise WireError(f"malformed array: {type(exc).__name__}") from None
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.hasobject:
        raise WireError(f"array dtype {dtype} is not plain data")
    if len(shape) > 32 or any(s < 0 for s in shape):
        raise WireError("malformed array shape")
    size = 1
    for s in shape:  # Python integers: no int64 wrap-around
        size *= s
    if size * dtype.itemsize != len(raw):
        raise WireError("array size does not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# --------------------------------------------------------------------------- framing


def dump_message(message: dict) -> bytes:
    """One framed message: header (length, id), then JSON."""
    body = json.dumps(message, allow_nan=True).encode("utf-8")
    if len(body) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    frame_id = message.get("id")
    frame_id = frame_id if type(frame_id) is int and 0 <= frame_id < 2**63 else 2**64 - 1
    return len(body).to_bytes(8, "big") + frame_id.to_bytes(8, "big") + body


def parse_header(header: bytes) -> tuple[int, int]:
    """``(length, id)`` of a frame's header."""
    return int.from_bytes(header[:8], "big"), int.from_bytes(header[8:16], "big")


def parse_body(body: bytes) -> dict:
    if body.count(b"[") + body.count(b"{") > MAX_CONTAINERS:
        raise WireError(f"more than {MAX_CONTAINERS} nested values (return an array)")
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
        raise WireError(f"malformed message: {type(exc).__name__}") from None
    if not isinstance(message, dict):
        raise WireError("malformed message")
    return message


def read_message_blocking(fd: int) -> dict | None:
    """Read one framed message from ``fd`` (blocking); ``None`` at end of file. Used by the
    student side, which has nothing else to do while it waits."""
    header = _read_exactly(fd, HEADER_BYTES)
    if header is None:
        return None
    size, _ = parse_header(header)
    if size > MAX_MESSAGE_BYTES:
        raise WireError("message too large")
    body = _read_exactly(fd, size)
    if body is None:
        return None
    return parse_body(body)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, remaining = [], n
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_all_blocking(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
