"""HTML pages: upload, permalink, and form posts that work without JavaScript (the JS uses the API)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for

from model_server.labels import EMOJI, EMOTIONS

from . import services
from .errors import AppError
from .limits import feedback_limit, predict_limit

bp = Blueprint("pages", __name__)


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
            data, source = services.fetch_url(image_url), "url"
        else:
            raise AppError("choose a photo or paste an image URL first", status=422, code="missing_image")
        outcome = services.create_analysis(data, source, keep_photo=request.form.get("keep_photo") == "on")
    except AppError as error:
        # Show the form again with the message rather than a bare error page.
        return render_template("index.html", error=error.message), error.status
    services.remember_owner(outcome.analysis.id)
    return redirect(url_for("pages.analysis", analysis_id=outcome.analysis.id))


def _results_context(analysis_id: str) -> dict:
    analysis = services.get_analysis(analysis_id)
    return {"analysis": analysis, "emotions": EMOTIONS, "emoji": EMOJI,
            "owner": services.is_owner(analysis, None)}


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
    analysis = services.get_analysis(analysis_id)
    if not analysis.photo_path:
        abort(404)
    return send_file(services.media().path(analysis.photo_path), mimetype="image/jpeg", max_age=3600)


@bp.post("/a/<analysis_id>/faces/<int:face_index>/feedback")
@feedback_limit
def feedback(analysis_id: str, face_index: int):
    """No-JavaScript correction form: store it, then come back with a thank-you."""
    correction = services.add_correction(analysis_id, face_index, request.form.get("emotion", ""),
                                         request.form.get("consent_crop") == "on")
    flash(f"Thank you! Face {face_index + 1} is now recorded as {correction.emotion}.")
    return redirect(url_for("pages.analysis", analysis_id=analysis_id))


@bp.post("/a/<analysis_id>/delete")
def delete(analysis_id: str):
    """No-JavaScript delete button (shown only to the session that made the analysis)."""
    services.delete_analysis(analysis_id, None)
    flash("The analysis and everything stored with it were deleted.")
    return redirect(url_for("pages.index"))
