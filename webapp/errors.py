"""The app's own exception types and the one HTTP error handler that turns any error into an answer."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from model_server.errors import AnalysisError

log = logging.getLogger(__name__)


class AppError(Exception):
    """An error the client can act on: carries an HTTP status, a stable code and a readable message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.code = code or self.code


class InvalidInput(AppError):
    """A request field is missing or has a wrong value."""

    status = 422
    code = "invalid_request"


class NotFound(AppError):
    """No such analysis or face."""

    status = 404
    code = "not_found"


class Forbidden(AppError):
    """The caller does not own the analysis (no delete token, not their session)."""

    status = 403
    code = "forbidden"


class Conflict(AppError):
    """The request is valid but cannot be done now (e.g. the crop is no longer in memory)."""

    status = 409
    code = "conflict"


class ServiceUnavailable(AppError):
    """The model or the database cannot answer now."""

    status = 503
    code = "unavailable"


# The model tier's error codes (model_server.errors) and the status each one means to a web client.
_MODEL_STATUS = {"unsupported_image": 415, "image_too_large": 413, "corrupt_image": 422, "invalid_image": 422,
                 "image_too_complex": 422, "analysis_failed": 422, "busy": 503, "model_unavailable": 503}


def describe(error: Exception) -> tuple[int, str, str] | None:
    """(status, code, message) of an error a client can act on, or None for an unexpected one.

    The one mapping for HTTP and Socket.IO alike.
    """
    if isinstance(error, AppError):
        return error.status, error.code, error.message
    if isinstance(error, AnalysisError):
        return _MODEL_STATUS.get(error.code, 422), error.code, error.message
    return None


# Werkzeug's names are human titles ("Request Entity Too Large"); clients want stable codes.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               429: "rate_limited", 500: "internal_error"}


def _wants_json() -> bool:
    """API routes and fetch() callers get JSON; pages get HTML."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _answer(status: int, code: str, message: str):
    """One error body for every error: JSON {"error", "message"} or the error page."""
    if _wants_json():
        return jsonify(error=code, message=message), status
    return render_template("error.html", status=status, code=code, message=message), status


def handle_error(error: Exception):
    """Map our errors, image errors and HTTP errors to their status; log and hide everything else."""
    known = describe(error)
    if known is not None:
        return _answer(*known)
    if isinstance(error, CSRFError):
        return _answer(400, "csrf_failed", f"{error.description} Reload the page and try again.")
    if isinstance(error, HTTPException):
        status = error.code or 500
        if status == 429:
            message = f"too many requests ({error.description}); wait a moment and try again"
        elif status == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message = f"the upload is too large; the limit is {limit / 1_000_000:.1f} MB"
        else:
            message = error.description or error.name
        return _answer(status, _HTTP_CODES.get(status, error.name.lower().replace(" ", "_")), message)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _answer(500, "internal_error", "something went wrong on our side; please try again")


def register_error_handler(app: Flask) -> None:
    """Install the one handler for every exception type."""
    app.register_error_handler(Exception, handle_error)
