"""JSON API v1: predict, feedback, analyses, health. Handlers parse, call a service, answer."""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from . import analyses, inference
from .analyses import APPEARANCE_NOTE, faces_json
from .db import ping
from .errors import InvalidInput
from .extensions import csrf
from .limits import feedback_limit, predict_limit
from .models import Analysis, Correction
from .openapi import openapi_document
from .photo import service as photo_service

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Token clients (scripts, apps) have no session to forge; browsers do, so they are checked below.
csrf.exempt(bp)

_TRUE = ("1", "true", "yes", "on")


@bp.before_request
def protect_cookie_requests() -> None:
    """Requests carrying our session cookie act with the browser's identity, so they need the CSRF token."""
    if _has_session_cookie() and request.method not in ("GET", "HEAD"):
        csrf.protect()


def _has_session_cookie() -> bool:
    return current_app.config["SESSION_COOKIE_NAME"] in request.cookies


def _option(name: str, body: dict[str, Any]) -> bool:
    """A boolean option from the query string, a form field or a JSON key."""
    value = request.args.get(name, request.form.get(name, body.get(name, False)))
    return value is True or str(value).lower() in _TRUE


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def analysis_dict(analysis: Analysis) -> dict[str, Any]:
    """An analysis as the API shows it (no token, no photo bytes)."""
    return {"id": analysis.id, "created": analysis.created.isoformat(), "source": analysis.source,
            "width": analysis.width, "height": analysis.height,
            "model": {"name": analysis.model_name, "version": analysis.model_version},
            # index: the model's order (largest face first), never changes; number: as pages label it.
            "faces": faces_json(analysis), "note": APPEARANCE_NOTE,
            "url": _public_url("photo.analysis", analysis_id=analysis.id),
            "photo_url": _public_url("photo.photo", analysis_id=analysis.id) if analysis.photo_path else None}


def _public_url(endpoint: str, **values: Any) -> str:
    """An absolute link on the configured public address; the request's Host header only when none is set
    (a client's Host header must not decide where links point)."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def correction_dict(correction: Correction) -> dict[str, Any]:
    """A stored correction as the API shows it."""
    return {"id": correction.id, "analysis_id": correction.face.analysis_id,
            "face_index": correction.face.face_index, "kind": correction.kind, "emotion": correction.emotion,
            "consent_crop": correction.consent_crop, "crop_stored": correction.crop_path is not None,
            "created": correction.created.isoformat()}


@bp.post("/predict")
@predict_limit
def predict():
    """Analyse an uploaded image (multipart ``image``) or an image URL (JSON or form ``image_url``)."""
    body = request.get_json(silent=True) if request.is_json else None
    body = body if isinstance(body, dict) else {}
    upload = request.files.get("image")
    image_url = body.get("image_url") or request.form.get("image_url")
    if upload is not None and upload.filename != "":
        data, source = upload.read(), request.form.get("source", "upload")
    elif isinstance(image_url, str) and image_url.strip():
        data, source = photo_service.fetch_url(image_url.strip()), "url"
    else:
        raise InvalidInput("send a file in the multipart field 'image' or JSON {\"image_url\": ...}",
                           code="missing_image")
    outcome = photo_service.analyse_photo(data, source, keep_photo=_option("keep_photo", body),
                                          want_annotated=_option("annotate", body),
                                          want_crops=_option("crops", body), want_image=_option("image", body),
                                          face_only=_option("face_only", body))
    if _has_session_cookie():
        # Browsers that loaded our pages also own it by session; token clients get no cookie at all.
        analyses.remember_owner(outcome.analysis.id)
    answer = analysis_dict(outcome.analysis)
    answer.update(model=outcome.model.as_dict(), delete_token=outcome.delete_token,
                  faces_omitted=outcome.faces_omitted, timings_ms=outcome.timings_ms)
    if outcome.faces_omitted:
        answer["notice"] = (f"{outcome.faces_omitted} more faces were found than the {len(answer['faces'])} "
                            "analysed; the largest faces were kept")
    if outcome.annotated_png is not None:
        answer["annotated_image"] = _data_url(outcome.annotated_png)
    if outcome.image_jpeg is not None:
        answer["image"] = _data_url(outcome.image_jpeg, "image/jpeg")
    if outcome.crop_pngs:
        for face, png in zip(answer["faces"], outcome.crop_pngs):
            face["crop"] = _data_url(png)
    return jsonify(answer), 200


@bp.post("/feedback")
@feedback_limit
def feedback():
    """The owner's answer about face N: "the right emotion is X" or "it's right" (kind "confirmation").

    One answer per face per owner: sending again replaces it. The face crop is kept only if consent_crop is true.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("send JSON {\"analysis_id\", \"face_index\", \"emotion\", \"consent_crop\"}")
    analysis_id, face_index = body.get("analysis_id"), body.get("face_index")
    consent, kind = body.get("consent_crop", False), body.get("kind", "correction")
    if not isinstance(analysis_id, str) or isinstance(face_index, bool) or not isinstance(face_index, int):
        raise InvalidInput("analysis_id must be a string and face_index an integer")
    if not isinstance(consent, bool):
        raise InvalidInput("consent_crop must be true or false")
    correction = analyses.add_correction(analysis_id, face_index, body.get("emotion"), consent,
                                         request.headers.get("X-Delete-Token"), kind=kind)
    return jsonify(correction_dict(correction)), 201


@bp.delete("/analyses/<analysis_id:analysis_id>/faces/<int:face_index>/feedback")
@feedback_limit
def withdraw_feedback(analysis_id: str, face_index: int):
    """Withdraw the owner's answer about one face; needs X-Delete-Token or the session that made it."""
    analyses.withdraw_correction(analysis_id, face_index, request.headers.get("X-Delete-Token"))
    return "", 204


@bp.get("/analyses/<analysis_id:analysis_id>")
def get_analysis(analysis_id: str):
    """An analysis by id: boxes and probabilities (the photo only if its owner chose to keep it)."""
    return jsonify(analysis_dict(analyses.get_analysis(analysis_id)))


@bp.delete("/analyses/<analysis_id:analysis_id>")
def delete_analysis(analysis_id: str):
    """Delete an analysis and its files; needs X-Delete-Token or the session that made it."""
    analyses.delete_analysis(analysis_id, request.headers.get("X-Delete-Token"))
    return "", 204


@bp.get("/health")
def health():
    """Model loaded and database reachable: 200, else 503."""
    model_ok, database_ok = inference.model_ready(), ping()
    status = "ok" if model_ok and database_ok else "unavailable"
    return jsonify(status=status, model_loaded=model_ok, database=database_ok), 200 if status == "ok" else 503


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document())
