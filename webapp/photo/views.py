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
        outcome = service.analyse_photo(data, source, keep_photo=request.form.get("keep_photo") == "on",
                                        face_only=request.form.get("face_only") == "on")
    except Exception as error:
        known = describe(error)
        if known is None:
            raise
        # Show the form again with the message rather than a bare error page.
        status, _code, message = known
        return render_template("index.html", error=message), status
    analyses.remember_owner(outcome.analysis.id)
    return redirect(url_for("photo.analysis", analysis_id=outcome.analysis.id))


# More faces than this get the compact view: a grid of thumbnails that open to their bars one at a time.
COMPACT_AFTER = 4


@bp.app_context_processor
def _wording() -> dict:
    """The sentence every result carries, for every template (pages, live, errors)."""
    return {"appearance_note": analyses.APPEARANCE_NOTE}


# A face cropped close leaves the detector no room around it; reading the whole picture needs no detector.
_FACE_ONLY_TIP = ("If the picture is already one face cropped close, upload it again with "
                  "\u201cThe picture is one face\u201d ticked.")


def no_face_advice(width: int, height: int) -> tuple[str, list[str]]:
    """(most likely reason, what helps) when no face was found, from what is known: the image size."""
    short = min(width, height)
    if short < 200:
        return (f"The image is small ({width}\u00d7{height} pixels), so a face in it has few pixels to find.",
                ["Use the original photo rather than a thumbnail or screenshot.",
                 "Crop closer to the face, so it fills at least a fifth of the picture.", _FACE_ONLY_TIP])
    return ("The face detector finds faces seen from the front (or nearly) that are at least about "
            f"{max(20, short // 50)} pixels wide; faces in profile, tilted far, very small or partly covered "
            "(sunglasses, masks, hands) are missed.",
            ["Use a photo where the face looks towards the camera and is not covered.",
             "If the faces are small in a wide shot, crop closer to them.",
             "If the photo is dark or backlit, choose a brighter one.", _FACE_ONLY_TIP])


def _results_context(analysis_id: str) -> dict:
    analysis = analyses.get_analysis(analysis_id)
    faces = analyses.numbered_faces(analysis)
    context = {"analysis": analysis, "faces": faces, "emotions": EMOTIONS, "emoji": EMOJI,
               "owner": analyses.is_owner(analysis, None), "answers": analyses.my_answers(analysis),
               "compact": len(faces) > COMPACT_AFTER}
    if not faces:
        context["reason"], context["advice"] = no_face_advice(analysis.width, analysis.height)
    return context


@bp.get("/a/<analysis_id:analysis_id>")
def analysis(analysis_id: str):
    """The permalink page of one analysis."""
    return render_template("analysis.html", **_results_context(analysis_id))


@bp.get("/a/<analysis_id:analysis_id>/results")
def results(analysis_id: str):
    """Just the results block, inserted by the upload page's JS (one template serves both pages)."""
    return render_template("_results.html", **_results_context(analysis_id))


@bp.get("/a/<analysis_id:analysis_id>/photo")
def photo(analysis_id: str):
    """The photo, only if its owner chose to keep it."""
    analysis = analyses.get_analysis(analysis_id)
    if not analysis.photo_path:
        abort(404)
    return send_file(analyses.media().path(analysis.photo_path), mimetype="image/jpeg", max_age=3600)


@bp.post("/a/<analysis_id:analysis_id>/faces/<int:face_index>/feedback")
@feedback_limit
def feedback(analysis_id: str, face_index: int):
    """No-JavaScript answer form ("it's right" or the right emotion): store it, then come back with a thank-you."""
    kind = "confirmation" if request.form.get("kind") == "confirmation" else "correction"
    emotion = None if kind == "confirmation" else request.form.get("emotion", "")
    correction = analyses.add_correction(analysis_id, face_index, emotion, request.form.get("consent_crop") == "on",
                                         kind=kind)
    flash(f"Thank you! Your answer for this face is now \u201c{correction.emotion}\u201d.")
    return redirect(url_for("photo.analysis", analysis_id=analysis_id, _anchor=f"face-{face_index}"))


@bp.post("/a/<analysis_id:analysis_id>/faces/<int:face_index>/feedback/withdraw")
@feedback_limit
def withdraw_feedback(analysis_id: str, face_index: int):
    """No-JavaScript withdraw button: delete the visitor's answer about one face."""
    analyses.withdraw_correction(analysis_id, face_index)
    flash("Your answer for this face was withdrawn.")
    return redirect(url_for("photo.analysis", analysis_id=analysis_id, _anchor=f"face-{face_index}"))


@bp.post("/a/<analysis_id:analysis_id>/delete")
def delete(analysis_id: str):
    """No-JavaScript delete button (shown only to the session that made the analysis)."""
    analyses.delete_analysis(analysis_id, None)
    flash("The analysis and everything stored with it were deleted.")
    return redirect(url_for("photo.index"))
