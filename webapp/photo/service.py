"""Photos in, stored analyses out: fetch (for URLs), one model call, one transaction."""

from __future__ import annotations

from flask import current_app

from .. import analyses, inference
from ..errors import InvalidInput
from ..fetch import FetchPolicy, fetch_image_bytes


def fetch_url(url: str) -> bytes:
    """Download an image URL under the configured SSRF policy and limits."""
    config = current_app.config
    policy = FetchPolicy(timeout_s=config["URL_FETCH_TIMEOUT"], max_bytes=config["URL_FETCH_MAX_BYTES"],
                         max_redirects=config["URL_FETCH_MAX_REDIRECTS"],
                         allow_loopback=config["URL_FETCH_ALLOW_LOOPBACK"])
    return fetch_image_bytes(url, policy)


def analyse_photo(data: bytes, source: str, *, keep_photo: bool = False, want_annotated: bool = False,
                  want_crops: bool = False, want_image: bool = False,
                  face_only: bool = False) -> analyses.NewAnalysis:
    """Analyse one photo (decoding, detection and encoding all in the model tier) and store the answer.

    ``face_only``: the picture is one face already cropped, so the whole of it is read without detection.
    """
    if source not in analyses.SOURCES:
        # Checked before the model runs: a bad field should not cost an analysis.
        raise InvalidInput(f"source must be one of {', '.join(analyses.SOURCES)}")
    result = inference.analyze(data, "photo", want_crops=True, want_annotated=want_annotated,
                               want_jpeg=keep_photo or want_image, face_only=face_only)
    outcome = analyses.store_analysis(result, source, keep_photo=keep_photo, want_crops=want_crops)
    outcome.image_jpeg = result.jpeg if want_image else None
    return outcome
