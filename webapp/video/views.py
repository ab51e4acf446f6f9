"""Video pages and ``/api/v1/videos``: parse, call the job service, answer."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from model_server import video
from model_server.labels import EMOJI, EMOTIONS

from ..api import protect_cookie_requests
from ..errors import Conflict
from ..extensions import csrf, limiter
from . import service

bp = Blueprint("video", __name__)
api_bp = Blueprint("video_api", __name__, url_prefix="/api/v1")
# Same rule as the rest of the API: token clients need no CSRF token, requests with our session cookie do.
csrf.exempt(api_bp)


@api_bp.before_request
def _video_body_limit() -> None:
    """Videos may be larger than photos: set the upload cap before anything parses the body (the CSRF check)."""
    if request.endpoint == "video_api.create":
        limit = current_app.config["VIDEO_MAX_BYTES"]
        if (request.content_length or 0) > limit:
            raise service.VideoTooLarge(f"the video is larger than the {limit / 1_000_000:.0f} MB limit")
        request.max_content_length = limit


api_bp.before_request(protect_cookie_requests)
video_limit = limiter.shared_limit(lambda: current_app.config["VIDEO_RATE_LIMIT"], scope="video")


@bp.get("/video", defaults={"job_id": None})
@bp.get("/video/<job_id>")
def page(job_id: str | None):
    """The upload page; with a job id in the URL it shows that job, so a reload finds it again."""
    return render_template("video.html", job_id=job_id, emotions=EMOTIONS, emoji=EMOJI,
                           max_mb=current_app.config["VIDEO_MAX_BYTES"] // 1_000_000,
                           max_seconds=int(current_app.config["VIDEO_MAX_SECONDS"]),
                           default_fps=current_app.config["VIDEO_DEFAULT_FPS"], max_fps=video.MAX_FPS)


@api_bp.post("/videos")
@video_limit
def create():
    """Upload a clip (multipart ``video``, optional ``fps`` and ``mode``); 202 with the job's status URL."""
    job = service.start_job(request.files.get("video"), request.form.get("fps"), request.form.get("mode"))
    status_url = url_for("video_api.status", job_id=job.id)
    return jsonify(id=job.id, status="queued", status_url=status_url,
                   page_url=url_for("video.page", job_id=job.id)), 202, {"Location": status_url}


@api_bp.get("/videos/<job_id>")
def status(job_id: str):
    """``{status, progress, result}``; ``?format=csv`` gives the finished timeline's samples as CSV."""
    job = service.jobs().get(job_id)
    if request.args.get("format") == "csv":
        if job["result"] is None:
            raise Conflict(f"the video is {job['status']}; the CSV comes when it is done", code="not_ready")
        return Response(video.timeline_csv(job["result"]), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="timeline-{job_id}.csv"'})
    return jsonify(job)


@api_bp.delete("/videos/<job_id>")
def delete(job_id: str):
    """Cancel a running analysis or forget a finished one."""
    service.jobs().remove(job_id)
    return "", 204
