"""The OpenAPI 3 description of JSON API v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from model_server.labels import EMOTIONS


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _options() -> list[dict[str, Any]]:
    flags = {
        "annotate": "Add `annotated_image`: a PNG data URL of the photo with boxes and labels (not stored).",
        "crops": "Add `crop` to every face: a PNG data URL of the 48x48 grayscale face the model saw (not stored).",
        "image": "Add `image`: the upright photo as a JPEG data URL without EXIF, to draw your own boxes on "
                 "(not stored).",
        "keep_photo": "Keep the photo (re-encoded, EXIF removed) so the permalink page shows it. Default false.",
        "face_only": "The picture is one face, already cropped (a face data set, a cut-out): no detection; its "
                     "largest centred square is read as that one face. Default false.",
    }
    return [{"name": name, "in": "query", "required": False, "description": text + " Also accepted as a "
             "form field or JSON key.", "schema": {"type": "boolean", "default": False}}
            for name, text in flags.items()]


def openapi_document() -> dict[str, Any]:
    """Build the document (labels come from model_server so they never drift)."""
    emotion_map = {"type": "object", "properties": {label: {"type": "number"} for label in EMOTIONS},
                   "description": "Probability of each emotion, in the model's label order; they sum to 1."}
    too_many = _error("Rate limit exceeded (per client); wait and retry.")
    return {
        "openapi": "3.0.3",
        "info": {"title": "Emotion Lens API", "version": "1.0.0",
                 "description": "Facial-expression recognition. Photos are analysed in memory and not stored "
                                "unless the caller asks (keep_photo) or consents to keep a face crop with a "
                                "correction. Face crops wait in memory for IMAGE_CACHE_SECONDS (default 10 "
                                "minutes) after an analysis, so consent must arrive within that time. Requests "
                                "that carry the site's session cookie must send the CSRF token in X-CSRFToken; "
                                "token clients (no cookie) need no CSRF token."},
        "paths": {
            "/api/v1/predict": {"post": {
                "summary": "Find every face in an image and classify its expression.",
                "parameters": _options(),
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string", "format": "binary",
                                  "description": "JPEG, PNG or WebP; at most MAX_CONTENT_LENGTH bytes and "
                                                 "MAX_PIXELS pixels."},
                        "source": {"type": "string", "enum": ["upload", "camera"], "default": "upload"}}}},
                    "application/json": {"schema": {"type": "object", "required": ["image_url"], "properties": {
                        "image_url": {"type": "string", "format": "uri",
                                      "description": "Public http(s) URL; private, loopback, link-local and "
                                                     "metadata addresses are refused."},
                        "annotate": {"type": "boolean"}, "crops": {"type": "boolean"}, "image": {"type": "boolean"},
                        "keep_photo": {"type": "boolean"}, "face_only": {"type": "boolean"}}}}}},
                "responses": {
                    "200": {"description": "The analysis (faces may be empty).", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Prediction"}}}},
                    "413": _error("Request or image too large (bytes or pixels)."),
                    "415": _error("Not an image, or not JPEG/PNG/WebP."),
                    "422": _error("Corrupt image, missing field, or an image URL that cannot be fetched "
                                  "or is not allowed."),
                    "429": too_many, "503": _error("Model not loaded or busy.")}}},
            "/api/v1/feedback": {"post": {
                "summary": "The owner's answer about one face: the right emotion, or that the prediction is right. "
                           "One answer per face per owner; sending again replaces it.",
                "parameters": [{"name": "X-Delete-Token", "in": "header", "required": False,
                                "schema": {"type": "string"},
                                "description": "Proves ownership; needed unless the browser session made the "
                                               "analysis."}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["analysis_id", "face_index"], "properties": {
                        "analysis_id": {"type": "string"}, "face_index": {"type": "integer", "minimum": 0},
                        "kind": {"type": "string", "enum": ["correction", "confirmation"], "default": "correction",
                                 "description": "confirmation: the predicted emotion is right (emotion may be "
                                                "left out). Naming the predicted emotion is a confirmation too."},
                        "emotion": {"type": "string", "enum": list(EMOTIONS),
                                    "description": "The right emotion; required for a correction."},
                        "consent_crop": {"type": "boolean", "default": False,
                                         "description": "Keep this face's crop for training (owner only)."}}}}}},
                "responses": {
                    "201": {"description": "Stored.", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Correction"}}}},
                    "403": _error("The caller does not own the analysis."),
                    "404": _error("Unknown analysis or face index."),
                    "409": _error("crop_unavailable: consent came after the crop left memory."),
                    "422": _error("Invalid emotion or fields."), "429": too_many}}},
            "/api/v1/analyses/{id}/faces/{face_index}/feedback": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "face_index", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}],
                "delete": {"summary": "Withdraw the owner's answer about one face (and its crop).",
                           "parameters": [{"name": "X-Delete-Token", "in": "header", "required": False,
                                           "schema": {"type": "string"}}],
                           "responses": {"204": {"description": "Withdrawn."},
                                         "403": _error("Not the owner."),
                                         "404": _error("No such analysis, face or answer."), "429": too_many}}},
            "/api/v1/analyses/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {"summary": "An analysis by id.", "responses": {
                    "200": {"description": "The analysis.", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Analysis"}}}},
                    "404": _error("No such analysis.")}},
                "delete": {"summary": "Delete an analysis, its corrections and its files.",
                           "parameters": [{"name": "X-Delete-Token", "in": "header", "required": False,
                                           "schema": {"type": "string"}}],
                           "responses": {"204": {"description": "Deleted."},
                                         "403": _error("Not the owner."), "404": _error("No such analysis.")}}},
            "/api/v1/videos": {"post": {
                "summary": "Upload a clip; its faces' emotions over time are analysed as a background job.",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["video"], "properties": {
                        "video": {"type": "string", "format": "binary",
                                  "description": "MP4, WebM or MOV; at most VIDEO_MAX_BYTES and VIDEO_MAX_SECONDS."},
                        "fps": {"type": "number", "default": 2, "maximum": 10,
                                "description": "Frames analysed per second of clip."},
                        "mode": {"type": "string", "enum": ["photo", "live"], "default": "photo"}}}}}},
                "responses": {
                    "202": {"description": "Queued; poll status_url.", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "id": {"type": "string"}, "status": {"type": "string"},
                            "status_url": {"type": "string"}, "page_url": {"type": "string"}}}}}},
                    "413": _error("The video is larger than VIDEO_MAX_BYTES."),
                    "415": _error("Not an MP4, WebM or MOV file."),
                    "422": _error("Unreadable video, too long (video_too_long), or a bad fps or mode."),
                    "429": too_many, "503": _error("Too many videos queued, or the model is unavailable.")}}},
            "/api/v1/videos/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {"summary": "A video job: status, progress and, when done, the timeline.",
                        "parameters": [{"name": "format", "in": "query", "required": False,
                                        "schema": {"type": "string", "enum": ["json", "csv"]},
                                        "description": "csv: the samples as CSV (track, t, x, y, w, h, one column "
                                                       "per emotion, top)."}],
                        "responses": {
                            "200": {"description": "The job.", "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/VideoJob"}}, "text/csv": {}}},
                            "404": _error("No such job (results are kept VIDEO_RESULT_SECONDS)."),
                            "409": _error("format=csv before the job is done (not_ready).")}},
                "delete": {"summary": "Cancel a running job or forget a finished one.",
                           "responses": {"204": {"description": "Cancelled or removed."},
                                         "404": _error("No such job.")}}},
            "/api/v1/health": {"get": {"summary": "Model loaded and database reachable.", "responses": {
                "200": {"description": "Ready."}, "503": {"description": "Not ready."}}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string", "description": "Stable machine-readable code."},
                "message": {"type": "string"}}},
            "Face": {"type": "object", "properties": {
                "index": {"type": "integer"},
                "box": {"type": "object", "properties": {k: {"type": "integer"} for k in ("x", "y", "w", "h")}},
                "emotions": emotion_map, "top": {"type": "string", "enum": list(EMOTIONS)},
                "emoji": {"type": "string"}, "crop": {"type": "string", "description": "Only with crops=true."},
                "number": {"type": "integer", "minimum": 1,
                           "description": "Place in reading order (rows top to bottom, left to right), as pages "
                                          "label the face; index is the model's order and never changes."}}},
            "Analysis": {"type": "object", "properties": {
                "id": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
                "source": {"type": "string", "enum": ["upload", "url", "camera"]},
                "width": {"type": "integer"}, "height": {"type": "integer"},
                "model": {"type": "object"}, "url": {"type": "string", "description": "Permalink page."},
                "photo_url": {"type": "string", "nullable": True},
                "note": {"type": "string", "description": "In plain words: the scores describe facial appearance, "
                                                          "not inner feelings."},
                "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}}}},
            "Prediction": {"allOf": [{"$ref": "#/components/schemas/Analysis"}, {"type": "object", "properties": {
                "delete_token": {"type": "string", "description": "Shown once; send as X-Delete-Token."},
                "timings_ms": {"type": "object"},
                "annotated_image": {"type": "string", "description": "Only with annotate=true."},
                "image": {"type": "string", "description": "Only with image=true."}}}]},
            "VideoJob": {"type": "object", "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
                "progress": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True,
                             "description": "Share of the clip analysed; null while its length is unknown "
                                            "(WebM recorded by a browser often does not say)."},
                "seconds_analysed": {"type": "number", "description": "Seconds of the clip read so far."},
                "error": {"nullable": True, "allOf": [{"$ref": "#/components/schemas/Error"}]},
                "result": {"type": "object", "nullable": True, "properties": {
                    "duration": {"type": "number"}, "frames": {"type": "integer"},
                    "tracks": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "dominant": {"type": "string", "enum": list(EMOTIONS)},
                        "emoji": {"type": "string"},
                        "samples": {"type": "array", "items": {"type": "object", "properties": {
                            "t": {"type": "number", "description": "Seconds from the start of the clip."},
                            "box": {"type": "object"}, "emotions": emotion_map}}}}}}}}}},
            "Correction": {"type": "object", "properties": {
                "id": {"type": "integer"}, "analysis_id": {"type": "string"}, "face_index": {"type": "integer"},
                "kind": {"type": "string", "enum": ["correction", "confirmation"]},
                "emotion": {"type": "string"}, "consent_crop": {"type": "boolean"},
                "crop_stored": {"type": "boolean"}, "created": {"type": "string", "format": "date-time"}}},
        }},
    }
