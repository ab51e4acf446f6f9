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
from .validation import valid_id
from .models import CORRECTION_KINDS, Analysis, Correction, Face, utcnow

SOURCES = ("upload", "url", "camera")
_OWNED_KEY, _OWNED_MAX = "owned_analyses", 50  # ids kept in the session cookie; a cookie holds ~4 KB
_VISITOR_KEY = "visitor"  # a random id per browser, so its answers about a face can be found and changed
# Said with every result (pages, live, API): what the numbers are and what they are not.
APPEARANCE_NOTE = ("These scores describe the facial expression as it appears in the picture. They do not "
                   "tell what a person feels inside, and must not be used to judge students or employees.")


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
    image_jpeg: bytes | None = None  # the upright photo re-encoded without EXIF, for this answer only


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


def reading_order(boxes: list[Box]) -> list[int]:
    """1-based face numbers in reading order: rows top to bottom, left to right within a row.

    A face joins the current row when its centre lies within half a face height of the row's centre, so a
    slightly higher head in a group photo does not start a new row.
    """
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].y + boxes[i].h / 2)
    rows: list[list[int]] = []
    for i in order:
        centre, height = boxes[i].y + boxes[i].h / 2, boxes[i].h
        if rows:
            row = rows[-1]
            row_centre = sum(boxes[j].y + boxes[j].h / 2 for j in row) / len(row)
            row_height = max(boxes[j].h for j in row)
            if abs(centre - row_centre) < max(row_height, height) / 2:
                row.append(i)
                continue
        rows.append([i])
    numbers = [0] * len(boxes)
    for number, i in enumerate((i for row in rows for i in sorted(row, key=lambda j: boxes[j].x)), start=1):
        numbers[i] = number
    return numbers


def _box(face: Face) -> Box:
    return Box(face.x, face.y, face.w, face.h)


def face_dict(face: Face, number: int | None = None) -> dict:
    """A stored face row in the one face shape every transport uses (plus its reading-order number)."""
    extra = {} if number is None else {"number": number}
    return face_json(face.face_index, _box(face), face.emotions, **extra)


def faces_json(analysis: Analysis) -> list[dict]:
    """An analysis's faces in the model's order (``index`` never changes), each with its ``number`` as shown."""
    numbers = reading_order([_box(face) for face in analysis.faces])
    return [face_dict(face, number) for face, number in zip(analysis.faces, numbers)]


def numbered_faces(analysis: Analysis) -> list[tuple[int, Face]]:
    """(number, face) in reading order: the order pages list the faces and label the boxes."""
    numbers = reading_order([_box(face) for face in analysis.faces])
    return sorted(zip(numbers, analysis.faces), key=lambda pair: pair[0])


def get_analysis(analysis_id: str) -> Analysis:
    """Load an analysis with its faces, or raise NotFound (ids of the wrong shape never reach the database)."""
    analysis = get_session().get(Analysis, analysis_id) if valid_id(analysis_id) else None
    if analysis is None:
        raise NotFound(f"no analysis {analysis_id!r} (it may have been deleted)")
    return analysis


def remember_owner(analysis_id: str) -> None:
    """Record in the visitor's session that they made this analysis (newest ids kept)."""
    owned = [i for i in session.get(_OWNED_KEY, []) if i != analysis_id] + [analysis_id]
    session[_OWNED_KEY] = owned[-_OWNED_MAX:]
    session.setdefault(_VISITOR_KEY, secrets.token_urlsafe(16))


def _visitor(token: str | None) -> str:
    """Who is answering, hashed: the holder of a delete token, or this browser."""
    if token:
        return hashlib.sha256(b"token:" + token.encode()).hexdigest()
    visitor = session.setdefault(_VISITOR_KEY, secrets.token_urlsafe(16))
    return hashlib.sha256(b"browser:" + visitor.encode()).hexdigest()


def is_owner(analysis: Analysis, token: str | None) -> bool:
    """True for the holder of the delete token, or the session that made the analysis."""
    if token:
        return hmac.compare_digest(_token_hash(token), analysis.delete_token_hash)
    return analysis.id in session.get(_OWNED_KEY, [])


def _face(analysis: Analysis, face_index: int) -> Face:
    face = next((f for f in analysis.faces if f.face_index == face_index), None)
    if face is None:
        raise NotFound(f"analysis {analysis.id!r} has no face {face_index}")
    return face


def _owned(analysis_id: str, token: str | None) -> Analysis:
    """The analysis if the caller owns it; a stranger with a permalink may look but not answer."""
    analysis = get_analysis(analysis_id)
    if not is_owner(analysis, token):
        raise Forbidden("only the person who analysed this photo can correct its faces "
                        "(the browser that made it, or X-Delete-Token)")
    return analysis


def add_correction(analysis_id: str, face_index: int, emotion: str | None, consent_crop: bool,
                   token: str | None = None, kind: str = "correction") -> Correction:
    """Store the owner's answer about one face; answering again replaces their previous answer.

    ``kind`` is "correction" (the right emotion is ``emotion``) or "confirmation" (the prediction is right;
    ``emotion`` may be left out). Naming the predicted emotion is a confirmation whatever the kind says.
    With consent the face crop the classifier saw is kept too.
    """
    if kind not in CORRECTION_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(CORRECTION_KINDS)}")
    analysis = _owned(analysis_id, token)
    face = _face(analysis, face_index)
    if emotion is None and kind == "confirmation":
        emotion = face.top
    try:
        label = EMOTIONS[emotion_index(emotion)]
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}",
                           code="invalid_emotion") from None
    if kind == "confirmation" and label != face.top:
        raise InvalidInput(f"a confirmation agrees with the prediction ({face.top}); send a correction instead")
    crop_path = None
    if consent_crop:
        crop = crop_cache().get(analysis_id, face_index)
        if crop is None:
            minutes = current_app.config["IMAGE_CACHE_SECONDS"] // 60
            raise Conflict(f"the photo is no longer in memory (kept {minutes} minutes and never stored); "
                           "send the correction without consent_crop, or analyse the photo again",
                           code="crop_unavailable")
        crop_path = media().put(png_bytes(crop), "crops", ".png")
    visitor = _visitor(token)
    db = get_session()
    correction = next((c for c in face.corrections if c.visitor == visitor), None)
    dropped = []
    if correction is None:
        correction = Correction(face=face, visitor=visitor)
        db.add(correction)
    elif correction.crop_path and correction.crop_path != crop_path:
        dropped.append(correction.crop_path)
    correction.emotion, correction.consent_crop, correction.crop_path = label, consent_crop, crop_path
    correction.kind = "confirmation" if label == face.top else "correction"
    correction.created = utcnow()
    db.commit()
    _delete_unused_files(dropped)
    return correction


def withdraw_correction(analysis_id: str, face_index: int, token: str | None = None) -> None:
    """Delete the caller's answer about one face (and its crop when nothing else uses it)."""
    face = _face(_owned(analysis_id, token), face_index)
    visitor = _visitor(token)
    correction = next((c for c in face.corrections if c.visitor == visitor), None)
    if correction is None:
        raise NotFound(f"you have no answer about face {face_index} of analysis {analysis_id!r}")
    db = get_session()
    db.delete(correction)
    db.commit()
    _delete_unused_files([correction.crop_path] if correction.crop_path else [])


def my_answers(analysis: Analysis, token: str | None = None) -> dict[int, Correction]:
    """The caller's current answer per face index (empty for strangers, who cannot answer)."""
    if not is_owner(analysis, token):
        return {}
    visitor = _visitor(token)
    return {face.face_index: c for face in analysis.faces for c in face.corrections if c.visitor == visitor}


def _delete_unused_files(paths: list[str]) -> None:
    """Delete stored files no row points at any more (the same bytes are stored once and may be shared)."""
    db = get_session()
    for path in set(paths):
        still_used = db.scalar(select(func.count()).select_from(Correction).where(Correction.crop_path == path))
        still_used += db.scalar(select(func.count()).select_from(Analysis).where(Analysis.photo_path == path))
        if not still_used:
            media().delete(path)


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
    _delete_unused_files(files)
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
        # kind: a correction (the model was wrong) or a confirmation (it was right); both are true labels.
        writer.writerow(["file", "emotion", "analysis_id", "created", "kind"])
        for correction, analysis_id in rows:
            # One file per correction: the same crop corrected twice may carry two labels.
            relative = f"{correction.emotion}/{correction.id:08d}-{Path(correction.crop_path).name}"
            (out / correction.emotion).mkdir(exist_ok=True)
            (out / relative).write_bytes(media().path(correction.crop_path).read_bytes())
            writer.writerow([relative, correction.emotion, analysis_id, correction.created.isoformat(),
                             correction.kind])
    return len(rows)
