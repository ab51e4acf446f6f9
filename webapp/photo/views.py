"""Photo pages: upload, permalink, and form posts that work without JavaScript (the JS uses the API)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for

from model_server.labels import EMOJI, EMOTIONS

from .. import analyses
from ..errors import InvalidInput, describe
from ..limits import feedback_limit, predict_limit
from . import service

bp = Blueprint("photo", __name__)


@bp.get("/")
def index():
    """The upload page."""
    return render_template("index.html")


@bp.post("/analyze")
@predict_limit
def analyze():
    """No-JavaScript upload: analyse the file or URL, then show the permalink page."""
    upload, image_url = request.files.get("image"), request.form.get("image_url", "").strip()
    try:
        if upload is not None and upload.filename:
            data, source = upload.read(), "upload"
        elif image_url:
            data, source = service.fetch_url(image_url), "url"
        else:
            raise InvalidInput("choose a photo or paste an image URL first", code="missing_image")
        outcome = service.analyse_photo(data, source, keep_photo=request.form.get("keep_photo") == "on")
    except Exception as error:
        known = describe(error)
        if known is None:
            raise
        # Show the form again with the message rather than a bare error page.
        status, _code, message = known
        return render_template("index.html", error=message), status
    analyses.remember_owner(outcome.analysis.id)
    return redirect(url_for("photo.analysis", analysis_id=outcome.analysis.id))


def _results_context(analysis_id: str) -> dict:
    analysis = analyses.get_analysis(analysis_id)
    return {"analysis": analysis, "emotions": EMOTIONS, "emoji": EMOJI,
            "owner": analyses.is_owner(analysis, None)}


@bp.get("/a/<analysis_id>")
def analysis(analysis_id: str):
    """The permalink page of one analysis."""
    return render_template("analysis.html", **_results_context(analysis_id))


@bp.get("/a/<analysis_id>/results")
def results(analysis_id: str):
    """Just the results block, inserted by the upload page's JS (one template serves both pages)."""
    return render_template("_results.html", **_results_context(analysis_id))


@bp.get("/a/<analysis_id>/photo")
def photo(analysis_id: str):
    """The photo, only if its owner chose to keep it."""
    analysis = analyses.get_analysis(analysis_id)
    if not analysis.photo_path:
        abort(404)
    return send_file(analyses.media().path(analysis.photo_path), mimetype="image/jpeg", max_age=3600)


@bp.post("/a/<analysis_id>/faces/<int:face_index>/feedback")
@feedback_limit
def feedback(analysis_id: str, face_index: int):
    """No-JavaScript correction form: store it, then come back with a thank-you."""
    correction = analyses.add_correction(analysis_id, face_index, request.form.get("emotion", ""),
                                         request.form.get("consent_crop") == "on")
    flash(f"Thank you! Face {face_index + 1} is now recorded as {correction.emotion}.")
    return redirect(url_for("photo.analysis", analysis_id=analysis_id))


@bp.post("/a/<analysis_id>/delete")
def delete(analysis_id: str):
    """No-JavaScript delete button (shown only to the session that made the analysis)."""
    analyses.delete_analysis(analysis_id, None)
    flash("The analysis and everything stored with it were deleted.")
    return redirect(url_for("photo.index"))
