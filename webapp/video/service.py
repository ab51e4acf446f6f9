"""Video jobs: an uploaded clip is checked, written to a temporary file, and analysed by a real OS thread.

The clip is deleted as soon as its job ends; only the timeline (numbers) stays, for VIDEO_RESULT_SECONDS,
on the job board (this process's memory, or Redis so that every web process can answer for every job).
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app
from werkzeug.datastructures import FileStorage

from model_server import video
from model_server.api import MODES, Predictor, load_predictor
from model_server.errors import AnalysisError
# The real stdlib threading module even under eventlet: a green worker would decode video on the event loop.
from model_server.serving.concurrency import queue, threading

from .. import inference
from .board import make_job_board
from ..errors import AppError, InvalidInput, NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

# Container signatures: ISO-BMFF (MP4, MOV) has "ftyp" (or an old QuickTime atom) at byte 4; WebM is EBML.
_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm"}
_QUICKTIME_ATOMS = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_EBML = b"\x1a\x45\xdf\xa3"


class VideoTooLarge(AppError):
    """An upload over VIDEO_MAX_BYTES."""

    status = 413
    code = "video_too_large"


class UnsupportedVideo(AppError):
    """Not an MP4, WebM or MOV file."""

    status = 415
    code = "unsupported_video"


@dataclass
class VideoJob:
    """One clip's analysis as its worker sees it: the clip, the settings, the model, the cancel flag."""

    id: str
    path: Path
    fps: float
    mode: str
    predictor: Predictor
    cancel: threading.Event = field(default_factory=threading.Event)

    def record(self, status: str, progress: float | None = 0.0, seconds: float = 0.0,
               result: dict[str, Any] | None = None, error: dict[str, str] | None = None) -> dict[str, Any]:
        """The status answer ``{id, status, progress, seconds_analysed, fps, mode, result, error}`` (plus when it
        finished); ``progress`` is None while the clip's length is unknown."""
        finished = time.time() if status in ("done", "failed", "cancelled") else None
        return {"id": self.id, "status": status, "progress": None if progress is None else round(progress, 3),
                "seconds_analysed": round(seconds, 1), "fps": self.fps, "mode": self.mode, "result": result,
                "error": error, "finished": finished}


class VideoJobs:
    """The app's video jobs: their status board and the real OS threads that run this process's jobs."""

    def __init__(self, config: Mapping[str, Any], predictor_spec: tuple[str, dict] | None = None) -> None:
        self.max_seconds = float(config["VIDEO_MAX_SECONDS"])
        self.predictor_spec = predictor_spec  # (spec, options) the app's predictor was built from
        self.max_jobs, self.workers = int(config["VIDEO_MAX_JOBS"]), int(config["VIDEO_WORKERS"])
        self.board = make_job_board(config)
        self._local: dict[str, VideoJob] = {}  # this process's queued and running jobs
        # A real lock held only for dict updates: the event loop never waits on it for long.
        self._lock = threading.Lock()
        self._queue: "queue.Queue[VideoJob | None]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._own = threading.local()  # per worker thread: its own remote predictor, when the model is remote

    def submit(self, job: VideoJob) -> None:
        """Queue a job; ServiceUnavailable when too many are waiting or running in this process."""
        with self._lock:
            if len(self._local) >= self.max_jobs:
                raise ServiceUnavailable("too many videos are being analysed; try again later", code="busy")
            self._local[job.id] = job
            # Threads start with the first job, so apps that never see a video (most tests) start none.
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"video-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        self.board.put(job.record("queued"))
        self._queue.put(job)

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's status answer, or NotFound."""
        record = self.board.get(job_id)
        if record is None:
            raise NotFound("no such video job (finished results are kept for a limited time)")
        record.pop("finished", None)
        return record

    def local(self, job_id: str) -> VideoJob | None:
        """This process's job, while it is queued or running."""
        with self._lock:
            return self._local.get(job_id)

    def remove(self, job_id: str) -> None:
        """Cancel a queued or running job (its worker stops before the next frame) or forget a finished one."""
        job = self.local(job_id)
        if job is not None:
            job.cancel.set()
        if not self.board.cancel(job_id) and job is None:
            raise NotFound("no such video job (finished results are kept for a limited time)")

    def _work(self) -> None:
        """Worker thread: run queued jobs one after another until None arrives."""
        while (job := self._queue.get()) is not None:
            try:
                self._run(job)
            finally:
                job.path.unlink(missing_ok=True)  # the clip never outlives its job
                with self._lock:
                    self._local.pop(job.id, None)

    def _cancelled(self, job: VideoJob) -> bool:
        """A cancel sent to this process, or to another one (through the board)."""
        return job.cancel.is_set() or self.board.cancelled(job.id)

    def _run(self, job: VideoJob) -> None:
        if self._cancelled(job):
            return
        self.board.put(job.record("running"))
        try:
            result = video.analyse_video(job.path, self._predictor_for(job), fps=job.fps, mode=job.mode,
                                         max_seconds=self.max_seconds,
                                         progress=lambda share, seconds: self.board.put(
                                             job.record("running", share, seconds)),
                                         cancelled=lambda: self._cancelled(job))
            self.board.put(job.record("done", 1.0, result["duration"], result=result))
        except video.VideoCancelled:
            pass  # the board forgot the job when it was cancelled
        except AnalysisError as error:
            self.board.put(job.record("failed", error={"error": error.code, "message": error.message}))
        except Exception:  # noqa: BLE001 - one broken clip must not kill the worker; the log has the traceback
            log.exception("video job %s failed", job.id)
            self.board.put(job.record("failed", error={"error": "internal_error",
                                                       "message": "the video could not be analysed"}))

    def _predictor_for(self, job: VideoJob) -> Predictor:
        """The app's in-process model (thread-safe, loaded once), or this worker thread's own remote predictor.

        A remote predictor's connections are green sockets under eventlet; one shared with the event loop's
        threads must not be used from this OS thread, but one of its own (with its own hub) can.
        """
        if job.predictor.runs_locally or self.predictor_spec is None:
            return job.predictor
        if getattr(self._own, "predictor", None) is None:
            spec, options = self.predictor_spec
            self._own.predictor = load_predictor(spec, **options)
        return self._own.predictor

    def close(self) -> None:
        """Cancel this process's jobs and stop the worker threads."""
        with self._lock:
            for job in self._local.values():
                job.cancel.set()
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)


def init_video(app: Flask) -> None:
    """Fill in the video settings not configured and register the job registry."""
    state = app.extensions["emotion_lens.inference"]
    app.extensions["emotion_lens.video"] = VideoJobs(app.config, (state.spec, dict(state.options)))


def jobs() -> VideoJobs:
    """The current app's video jobs."""
    return current_app.extensions["emotion_lens.video"]


def _checked_suffix(upload: FileStorage) -> str:
    """The upload's file suffix when its name and first bytes say MP4, MOV or WebM; else UnsupportedVideo."""
    suffix = Path(upload.filename or "").suffix.lower()
    head = upload.stream.read(16)
    upload.stream.seek(0)
    is_quicktime = len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS
    if suffix not in _SUFFIXES or not (is_quicktime or head.startswith(_EBML)):
        raise UnsupportedVideo("send an MP4, WebM or MOV video file")
    if (suffix == ".webm") != head.startswith(_EBML):
        raise UnsupportedVideo(f"the file's content does not match its {suffix} name")
    return suffix


def _checked_options(fps: str | None, mode: str | None) -> tuple[float, str]:
    """Sample rate and serving mode from the form, with their defaults."""
    try:
        rate = float(fps) if fps not in (None, "") else float(current_app.config["VIDEO_DEFAULT_FPS"])
    except ValueError:
        raise InvalidInput("fps must be a number") from None
    if not 0 < rate <= video.MAX_FPS:
        raise InvalidInput(f"fps must be more than 0 and at most {video.MAX_FPS:g}")
    mode = mode or "photo"
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
    return rate, mode


def start_job(upload: FileStorage | None, fps: str | None = None, mode: str | None = None) -> VideoJob:
    """Check an uploaded clip, keep it in a private temporary file, and queue its analysis."""
    if upload is None or not upload.filename:
        raise InvalidInput("send the clip in the multipart field 'video'", code="missing_video")
    rate, mode = _checked_options(fps, mode)
    suffix = _checked_suffix(upload)
    predictor = inference.get_predictor()
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="clip-")  # 0600: only this user reads it
    path = Path(name)
    try:
        # Copying up to VIDEO_MAX_BYTES and opening the container block: off the event loop, like every decode.
        with os.fdopen(handle, "wb") as out:
            inference.run_off_loop(upload.save, out)
        info = inference.run_off_loop(video.probe, path)
        limit = jobs().max_seconds
        if info.duration is not None and info.duration > limit:
            raise video.VideoTooLongError(f"the clip lasts {info.duration:.0f} s; the limit is {limit:g} s")
        job = VideoJob(id=secrets.token_urlsafe(16), path=path, fps=rate, mode=mode, predictor=predictor)
        jobs().submit(job)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return job
