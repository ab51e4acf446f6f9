"""Requests checked before any handler sees them: chunked bodies, JSON depth, and the shape of analysis ids.

Each check turns input that used to reach a parser or the database as a 500 (issue 9) into a clear 4xx.
"""

from __future__ import annotations

import io
import re

import numpy as np
from flask import Flask, request
from werkzeug.exceptions import BadRequest, LengthRequired, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

# secrets.token_urlsafe(12): 16 characters of the URL-safe base64 alphabet.
ANALYSIS_ID_PATTERN = r"[A-Za-z0-9_-]{16}"
MAX_JSON_DEPTH = 32  # our JSON bodies are 2 levels deep; Python's parser recurses, so 100,000 levels gave 500
# Our JSON bodies carry a URL, an id and a label: a few KB. Refusing bigger ones up front bounds the depth scan
# (and the parse) to milliseconds on the event loop instead of seconds for 16 MB of brackets.
MAX_JSON_BYTES = 64 * 1024
_ANALYSIS_ID = re.compile(ANALYSIS_ID_PATTERN)
# A JSON string, whose brackets do not nest, or an unterminated one up to the end. Possessive repeats never
# backtrack and every match attempt succeeds, so scanning stays linear even on hostile input.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)


def valid_id(value: object) -> bool:
    """True when value has the shape of an analysis id, so NUL bytes, surrogates or junk never reach SQL."""
    return isinstance(value, str) and _ANALYSIS_ID.fullmatch(value) is not None


class AnalysisIdConverter(BaseConverter):
    """URL converter for ``<analysis_id:...>``: any other shape is simply no route (404), never a query."""

    regex = ANALYSIS_ID_PATTERN


def json_depth(body: bytes) -> int:
    """How deeply a JSON document nests arrays and objects, without parsing it (vectorised, no recursion)."""
    skeleton = np.frombuffer(_JSON_STRING.sub(b"", body), np.int8)
    steps = (skeleton == ord("[")) | (skeleton == ord("{"))
    steps = steps.astype(np.int32) - ((skeleton == ord("]")) | (skeleton == ord("}")))
    return int(np.cumsum(steps).max(initial=0))


class _ChunkedBodies:
    """WSGI middleware: chunked request bodies are read whole (up to the size cap) or refused with a reason.

    Werkzeug reads a body without Content-Length only if the server sets ``wsgi.input_terminated``;
    eventlet de-chunks but does not set it, so chunked uploads arrived empty ("missing_image"). Where the
    flag is set, Werkzeug cuts a body at MAX_CONTENT_LENGTH without an error. Reading the body here and
    giving it a Content-Length makes every server behave like a plain upload.
    """

    def __init__(self, wsgi_app, config) -> None:
        self.wsgi_app, self.config = wsgi_app, config

    def __call__(self, environ, start_response):
        """Buffer a de-chunked body and set its length; note a refusal for _refuse_unreadable_body."""
        # Transfer-Encoding wins over any Content-Length sent beside it (RFC 9112), for Werkzeug as for us.
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            if not environ.get("wsgi.input_terminated") and "eventlet.input" not in environ:
                environ[_REFUSAL] = LengthRequired("send a Content-Length with the body")
                body = b""
            else:
                limit = self.config.get("MAX_CONTENT_LENGTH") or float("inf")
                body = _read_up_to(environ["wsgi.input"], limit + 1)
                if len(body) > limit:
                    environ[_REFUSAL] = RequestEntityTooLarge()
                    body = b""
            # Now a plain body with a length (Werkzeug ignores Content-Length while Transfer-Encoding says chunked).
            del environ["HTTP_TRANSFER_ENCODING"]
            environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        return self.wsgi_app(environ, start_response)


_REFUSAL = "emotion_lens.body_refused"


def _read_up_to(stream, limit: float) -> bytes:
    """Read a stream to its end or until just past ``limit`` bytes, whichever comes first."""
    chunks, total = [], 0
    while total < limit and (chunk := stream.read(min(64 * 1024, int(min(limit - total, 1 << 30))))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _refuse_unreadable_body() -> None:
    """before_request, first of all: a body the middleware refused answers 411 or 413 through the error handler."""
    if _REFUSAL in request.environ:
        raise request.environ[_REFUSAL]


def _refuse_deep_json() -> None:
    """before_request: refuse JSON bigger (413) or deeper (400) than any of ours, before the parser recurses."""
    if not request.is_json:
        return
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise RequestEntityTooLarge(f"JSON bodies are at most {MAX_JSON_BYTES:,} bytes")
    if json_depth(request.get_data(cache=True)) > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")


def init_validation(app: Flask) -> None:
    """Install the checks on an app: call it before the blueprints are registered (they use the converter)."""
    app.url_map.converters["analysis_id"] = AnalysisIdConverter
    app.wsgi_app = _ChunkedBodies(app.wsgi_app, app.config)
    # First in line: CSRF and rate-limit hooks read the body or count the request, and should not on these.
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_unreadable_body)
    app.before_request(_refuse_deep_json)
