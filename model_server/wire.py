"""The model tier's wire format: AnalysisRequest, ImageAnalysis and errors as compact bytes; no torch, no pickle.

A message is a 4-byte big-endian header length, a JSON header, then raw byte blobs (image bytes, 48x48 crops,
PNG, JPEG) that the header refers to by index: a 30 KB frame costs no base64 and no copy through JSON.
Only the contract's own dataclasses can be rebuilt, each through its constructor and its validation, so a
message from the queue can never build an arbitrary object.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import numpy as np

from .api import AnalysisRequest, Box, FaceResult, ImageAnalysis, ModelInfo
from .errors import AnalysisError, error_from_code

_TYPES = {cls.__name__: cls for cls in (AnalysisRequest, Box, FaceResult, ImageAnalysis, ModelInfo)}
_LENGTH = struct.Struct(">I")
# Crops and images are uint8; anything else would be a bug or a hostile message.
_DTYPES = {"uint8"}


class WireError(ValueError):
    """A message that is not one of ours (truncated, unknown type, bad blob reference)."""


def _pack(value: Any, blobs: list[bytes]) -> Any:
    """A JSON-able form of ``value`` whose bytes and arrays are moved to ``blobs``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        blobs.append(bytes(value))
        return {"$b": len(blobs) - 1}
    if isinstance(value, np.ndarray):
        blobs.append(np.ascontiguousarray(value).tobytes())
        return {"$a": len(blobs) - 1, "dtype": value.dtype.name, "shape": list(value.shape)}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _TYPES:
        packed = {item.name: _pack(getattr(value, item.name), blobs) for item in dataclasses.fields(value)}
        return {"$t": type(value).__name__, **packed}
    if isinstance(value, (list, tuple)):
        return [_pack(item, blobs) for item in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {"$m": {str(key): _pack(item, blobs) for key, item in value.items()}}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} on the wire")


def _unpack(value: Any, blobs: list[memoryview]) -> Any:
    """Rebuild what ``_pack`` made; lists come back as tuples, as the frozen dataclasses hold them."""
    if isinstance(value, list):
        return tuple(_unpack(item, blobs) for item in value)
    if not isinstance(value, dict):
        return value
    if "$b" in value:
        return bytes(_blob(blobs, value["$b"]))
    if "$a" in value:
        if value.get("dtype") not in _DTYPES:
            raise WireError(f"unsupported array dtype {value.get('dtype')!r}")
        shape = tuple(int(side) for side in value["shape"])
        data = _blob(blobs, value["$a"])
        if len(data) != int(np.prod(shape)):
            raise WireError("array blob does not match its shape")
        # A writable copy: the caller owns the crop, as with the in-process engine.
        return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
    if "$m" in value:
        return {key: _unpack(item, blobs) for key, item in value["$m"].items()}
    if "$t" in value:
        cls = _TYPES.get(value["$t"])
        if cls is None:
            raise WireError(f"unknown type {value['$t']!r}")
        names = {item.name for item in dataclasses.fields(cls)}
        # Fields a newer sender added are ignored, so workers and web processes can be upgraded one at a time.
        return cls(**{key: _unpack(item, blobs) for key, item in value.items() if key in names})
    raise WireError("unexpected object in message")


def _blob(blobs: list[memoryview], index: Any) -> memoryview:
    if not isinstance(index, int) or not 0 <= index < len(blobs):
        raise WireError("bad blob reference")
    return blobs[index]


def _frame(header: Any, blobs: list[bytes]) -> bytes:
    head = json.dumps({"v": 1, "body": header, "blobs": [len(blob) for blob in blobs]},
                      separators=(",", ":")).encode()
    return b"".join([_LENGTH.pack(len(head)), head, *blobs])


def _unframe(message: bytes) -> tuple[Any, list[memoryview]]:
    view = memoryview(message)
    try:
        (length,) = _LENGTH.unpack_from(view)
        head = json.loads(bytes(view[_LENGTH.size:_LENGTH.size + length]))
        sizes = [int(size) for size in head["blobs"]]
        body = head["body"]
    except (struct.error, ValueError, KeyError, TypeError) as error:
        raise WireError("not a model-tier message") from error
    offset, blobs = _LENGTH.size + length, []
    for size in sizes:
        if size < 0 or offset + size > len(view):
            raise WireError("truncated message")
        blobs.append(view[offset:offset + size])
        offset += size
    return body, blobs


def encode_request(request: AnalysisRequest) -> bytes:
    """An AnalysisRequest (bytes or array image) as one message."""
    return _frame(_pack(request, blobs := []), blobs)


def decode_request(message: bytes) -> AnalysisRequest:
    """The AnalysisRequest in a message from ``encode_request``; raises WireError for anything else."""
    request = _decode(message)
    if not isinstance(request, AnalysisRequest):
        raise WireError("expected an analysis request")
    return request


def encode_result(result: ImageAnalysis | AnalysisError) -> bytes:
    """An answer, or the model-tier error that replaced it, as one message."""
    if isinstance(result, AnalysisError):
        return _frame({"$error": result.code, "message": result.message}, [])
    return _frame(_pack(result, blobs := []), blobs)


def decode_result(message: bytes) -> ImageAnalysis:
    """The ImageAnalysis in a message from ``encode_result``; re-raises an error answer as its own class."""
    body, blobs = _unframe(message)
    if isinstance(body, dict) and "$error" in body:
        raise error_from_code(str(body["$error"]), str(body.get("message", "")))
    result = _unpack_checked(body, blobs)
    if not isinstance(result, ImageAnalysis):
        raise WireError("expected an image analysis")
    return result


def _decode(message: bytes) -> Any:
    body, blobs = _unframe(message)
    return _unpack_checked(body, blobs)


def _unpack_checked(body: Any, blobs: list[memoryview]) -> Any:
    """Unpack, turning a dataclass's own refusal (a negative box, a bad mode) into WireError."""
    try:
        return _unpack(body, blobs)
    except WireError:
        raise
    except (TypeError, ValueError) as error:
        raise WireError(f"invalid message: {error}") from error
