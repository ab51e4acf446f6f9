"""The model tier's wire format: every contract value survives a round trip; foreign messages are refused."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from model_server import errors
from model_server.api import AnalysisRequest, Box, FaceResult, ImageAnalysis, ModelInfo
from model_server.wire import WireError, decode_request, decode_result, encode_request, encode_result


def analysis(with_extras: bool = True) -> ImageAnalysis:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
    face = FaceResult(Box(10, 12, 30, 31), Box(8, 9, 36, 36), (0.1, 0.2, 0.05, 0.05, 0.3, 0.1, 0.2),
                      crop=crop if with_extras else None)
    model = ModelInfo("vgg_tiny", "2026-11-01", metrics={"accuracy": 0.7024, "macro_f1": 0.68})
    return ImageAnalysis(width=640, height=480, faces=(face, face), model=model,
                         timings_ms={"decode": 1.5, "total": 9.25}, faces_omitted=3,
                         annotated_png=b"\x89PNG fake" if with_extras else None,
                         jpeg=b"\xff\xd8 jpeg \x00 bytes" if with_extras else None,
                         signature=bytes(range(192)) if with_extras else None)


def test_a_request_with_bytes_survives_the_wire():
    request = AnalysisRequest(b"\xff\xd8 any bytes \x00", mode="live", want_crops=True, want_jpeg=True,
                              max_pixels=1234, hints=(Box(1, 2, 3, 4), Box(5, 6, 7, 8)), deadline=1.7e9 + 0.125,
                              face_only=True)
    assert decode_request(encode_request(request)) == request


def test_a_request_with_an_array_survives_the_wire():
    image = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3)
    decoded = decode_request(encode_request(AnalysisRequest(image)))
    assert decoded.image.dtype == np.uint8 and np.array_equal(decoded.image, image)
    assert decoded.mode == "photo" and decoded.hints == () and decoded.deadline is None


@pytest.mark.parametrize("with_extras", [True, False])
def test_an_analysis_survives_the_wire(with_extras):
    original = analysis(with_extras)
    decoded = decode_result(encode_result(original))
    assert (decoded.width, decoded.height, decoded.faces_omitted) == (640, 480, 3)
    assert decoded.model == original.model and dict(decoded.timings_ms) == dict(original.timings_ms)
    assert (decoded.annotated_png, decoded.jpeg, decoded.signature) == \
           (original.annotated_png, original.jpeg, original.signature)
    for got, sent in zip(decoded.faces, original.faces, strict=True):
        assert (got.box, got.crop_box, got.probabilities, got.top) == (sent.box, sent.crop_box, sent.probabilities,
                                                                        sent.top)
        assert (got.crop is None) == (not with_extras)
        if with_extras:
            assert got.crop.shape == (48, 48) and np.array_equal(got.crop, sent.crop)


def test_the_crops_are_raw_bytes_not_json():
    message = encode_result(analysis())
    # Two 48x48 crops ride as 2 x 2304 raw bytes beside a small header.
    assert len(message) < 2 * 48 * 48 + 1500


@pytest.mark.parametrize("error", [errors.CorruptImageError("broken"), errors.ImageTooLargeError("too big"),
                                   errors.ModelBusyError("busy now"), errors.ModelUnavailableError("gone"),
                                   errors.AnalysisError("failed")])
def test_an_error_comes_back_as_its_own_class(error):
    with pytest.raises(type(error)) as raised:
        decode_result(encode_result(error))
    assert type(raised.value) is type(error) and raised.value.message == error.message


def _message(body, blobs=()) -> bytes:
    head = json.dumps({"v": 1, "body": body, "blobs": [len(blob) for blob in blobs]}).encode()
    return struct.pack(">I", len(head)) + head + b"".join(blobs)


@pytest.mark.parametrize("message", [
    b"",
    b"\x00\x00\x00\x05{not",
    _message({"$t": "Popen", "args": ["sh"]}),  # only the contract's own types can be built
    _message({"$t": "Box", "x": 0, "y": 0, "w": -1, "h": 2}),  # the dataclass's own validation still runs
    _message({"$t": "AnalysisRequest", "image": {"$b": 3}}),  # a blob that is not there
    _message({"$t": "AnalysisRequest", "image": {"$a": 0, "dtype": "object", "shape": [1]}}, [b"x"]),
    _message({"$t": "AnalysisRequest", "image": {"$a": 0, "dtype": "uint8", "shape": [4, 4]}}, [b"short"]),
    _message({"$t": "AnalysisRequest", "image": {"$b": 0}}, [b"x"])[:-1],  # truncated
    _message({"$t": "AnalysisRequest", "image": {"$b": 0}, "mode": "video"}, [b"x"]),
    _message({"$t": "Box", "x": 1, "y": 1, "w": 1, "h": 1}),  # a valid value, but not a request
])
def test_foreign_messages_are_refused(message):
    with pytest.raises(WireError):
        decode_request(message)


def test_a_field_from_a_newer_sender_is_ignored():
    message = _message({"$t": "AnalysisRequest", "image": {"$b": 0}, "mode": "live", "priority": 3}, [b"img"])
    assert decode_request(message) == AnalysisRequest(b"img", mode="live")
