"""Stored analyses, corrections, deletion and export: one model answer in, one database transaction out."""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app, session
from sqlalchemy import func, select

from model_server.api import Box, ImageAnalysis, ModelInfo, face_json
from model_server.labels import EMOTIONS, emotion_index

from .db import get_session
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .image_cache import CropCache
from .media import MediaStore, png_bytes
from .models import Analysis, Correction, Face

SOURCES = ("upload", "url", "camera")
_OWNED_KEY, _OWNED_MAX = "owned_analyses", 50  # ids kept in the session cookie; a cookie holds ~4 KB


@dataclass
class NewAnalysis:
    """A stored analysis plus what exists only in this answer: the token, the model, timings, optional images."""

    analysis: Analysis
    model: ModelInfo
    delete_token: str
    timings_ms: dict[str, float]
    faces_omitted: int = 0
    annotated_png: bytes | None = None
    crop_pngs: list[bytes] = field(default_factory=list)


def media() -> MediaStore:
    """The app's media store."""
    return current_app.extensions["emotion_lens.media"]


def crop_cache() -> CropCache:
    """The app's in-memory cache of recent face crops."""
    return current_app.extensions["emotion_lens.crops"]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def store_analysis(result: ImageAnalysis, source: str, *, keep_photo: bool = False,
                   want_crops: bool = False) -> NewAnalysis:
    """Store one model answer in one transaction (the photo only if asked) and remember its crops briefly.

    The crops are the 48x48 grayscale faces the classifier saw, so a consented correction stores exactly
    the input a retrained model will see again.
    """
    token = secrets.token_urlsafe(24)
    analysis = Analysis(id=secrets.token_urlsafe(12), width=result.width, height=result.height,
                        model_name=result.model.name, model_version=result.model.version, source=source,
                        delete_token_hash=_token_hash(token))
    if keep_photo and result.jpeg is not None:
        # The model tier re-encoded it from pixels, so EXIF (GPS position, device) never reaches the disk.
        analysis.photo_path = media().put(result.jpeg, "photos", ".jpg")
    for index, face in enumerate(result.faces):
        row = Face(face_index=index, x=face.box.x, y=face.box.y, w=face.box.w, h=face.box.h, top=face.top,
                   model_version=result.model.version)
        row.set_emotions(face.emotions)
        analysis.faces.append(row)
    db = get_session()
    db.add(analysis)
    db.commit()
    crops = [face.crop for face in result.faces if face.crop is not None]
    if len(crops) == len(result.faces):
        crop_cache().put(analysis.id, crops)
    return NewAnalysis(analysis=analysis, model=result.model, delete_token=token,
                       timings_ms=dict(result.timings_ms), faces_omitted=result.faces_omitted,
                       annotated_png=result.annotated_png,
                       crop_pngs=[png_bytes(crop) for crop in crops] if want_crops else [])


def face_dict(face: Face) -> dict:
    """A stored face row in the one face shape every transport uses."""
    return face_json(face.face_index, Box(face.x, face.y, face.w, face.h), face.emotions)


def get_analysis(analysis_id: str) -> Analysis:
    """Load an analysis with its faces, or raise NotFound."""
    analysis = get_session().get(Analysis, analysis_id)
    if analysis is None:
        raise NotFound(f"no analysis {analysis_id!r} (it may have been deleted)")
    return analysis


def remember_owner(analysis_id: str) -> None:
    """Record in the visitor's session that they made this analysis (newest ids kept)."""
    owned = [i for i in session.get(_OWNED_KEY, []) if i != analysis_id] + [analysis_id]
    session[_OWNED_KEY] = owned[-_OWNED_MAX:]


def is_owner(analysis: Analysis, token: str | None) -> bool:
    """True for the holder of the delete token, or the session that made the analysis."""
    if token:
        return hmac.compare_digest(_token_hash(token), analysis.delete_token_hash)
    return analysis.id in session.get(_OWNED_KEY, [])


def add_correction(analysis_id: str, face_index: int, emotion: str, consent_crop: bool,
                   token: str | None = None) -> Correction:
    """Store a visitor's correction; with consent (from the owner only) the face crop is kept too."""
    try:
        label = EMOTIONS[emotion_index(emotion)]
    except (ValueError, AttributeError):
        raise InvalidInput(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}",
                           code="invalid_emotion") from None
    analysis = get_analysis(analysis_id)
    face = next((f for f in analysis.faces if f.face_index == face_index), None)
    if face is None:
        raise NotFound(f"analysis {analysis_id!r} has no face {face_index}")
    correction = Correction(face=face, emotion=label, consent_crop=consent_crop)
    if consent_crop:
        # Only the person who uploaded the photo may agree to keep a picture of the face in it.
        if not is_owner(analysis, token):
            raise Forbidden("only the person who analysed this photo can agree to keep the face crop")
        crop = crop_cache().get(analysis_id, face_index)
        if crop is None:
            minutes = current_app.config["IMAGE_CACHE_SECONDS"] // 60
            raise Conflict(f"the photo is no longer in memory (kept {minutes} minutes and never stored); "
                           "send the correction without consent_crop, or analyse the photo again",
                           code="crop_unavailable")
        correction.crop_path = media().put(png_bytes(crop), "crops", ".png")
    db = get_session()
    db.add(correction)
    db.commit()
    return correction


def delete_analysis(analysis_id: str, token: str | None) -> None:
    """Delete an analysis, its faces and corrections, and the files no other row still uses."""
    analysis = get_analysis(analysis_id)
    if not is_owner(analysis, token):
        raise Forbidden("deleting needs the delete token (X-Delete-Token) or the browser that made it")
    db = get_session()
    files = [c.crop_path for f in analysis.faces for c in f.corrections if c.crop_path]
    files += [analysis.photo_path] if analysis.photo_path else []
    db.delete(analysis)
    db.commit()
    # The same bytes are stored once, so a file goes only when no remaining row points at it.
    for path in set(files):
        still_used = db.scalar(select(func.count()).select_from(Correction).where(Correction.crop_path == path))
        still_used += db.scalar(select(func.count()).select_from(Analysis).where(Analysis.photo_path == path))
        if not still_used:
            media().delete(path)
    crop_cache().discard(analysis_id)
    owned = session.get(_OWNED_KEY, [])
    if analysis_id in owned:
        session[_OWNED_KEY] = [i for i in owned if i != analysis_id]


def export_corrections(out_dir: str | Path) -> int:
    """Write consented crops as ``<emotion>/<file>.png`` plus corrections.csv; returns how many."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = get_session().execute(
        select(Correction, Face.analysis_id).join(Face).where(Correction.consent_crop.is_(True),
                                                              Correction.crop_path.is_not(None))
        .order_by(Correction.created, Correction.id)).all()
    with open(out / "corrections.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "emotion", "analysis_id", "created"])
        for correction, analysis_id in rows:
            # One file per correction: the same crop corrected twice may carry two labels.
            relative = f"{correction.emotion}/{correction.id:08d}-{Path(correction.crop_path).name}"
            (out / correction.emotion).mkdir(exist_ok=True)
            (out / relative).write_bytes(media().path(correction.crop_path).read_bytes())
            writer.writerow([relative, correction.emotion, analysis_id, correction.created.isoformat()])
    return len(rows)
