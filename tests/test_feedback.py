"""Answers about faces (corrections and confirmations, one per face per owner), consent to keep crops,
withdrawing, deletion of rows and files, and the training export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from model_server.training.data import load_folder
from model_server.labels import EMOTIONS
from web_helpers import image_bytes, make_config, upload
from webapp import create_app
from webapp.db import get_session
from webapp.models import Correction, Face


def _feedback(client, analysis_id, emotion="happy", face_index=0, consent=False, token=None, **extra):
    headers = {"X-Delete-Token": token} if token else {}
    return client.post("/api/v1/feedback", json={"analysis_id": analysis_id, "face_index": face_index,
                                                 "emotion": emotion, "consent_crop": consent, **extra},
                       headers=headers)


def _withdraw(client, analysis_id, face_index=0, token=None):
    headers = {"X-Delete-Token": token} if token else {}
    return client.delete(f"/api/v1/analyses/{analysis_id}/faces/{face_index}/feedback", headers=headers)


def _rows(app):
    with app.app_context():
        return [(c.kind, c.emotion, c.consent_crop) for c in get_session().scalars(select(Correction))]


def _files(app, kind):
    folder = Path(app.config["MEDIA_DIR"]) / kind
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_correction_is_stored_without_a_crop_by_default(app, client):
    analysis = upload(client).get_json()
    response = _feedback(client, analysis["id"], "Surprise", token=analysis["delete_token"])
    assert response.status_code == 201
    body = response.get_json()
    assert body["emotion"] == "surprise" and body["consent_crop"] is False and body["crop_stored"] is False
    assert body["kind"] == "correction"
    assert _files(app, "crops") == []
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Correction)) == 1


def test_consent_keeps_the_face_crop(app, client):
    analysis = upload(client).get_json()
    body = _feedback(client, analysis["id"], "sad", consent=True, token=analysis["delete_token"]).get_json()
    assert body["crop_stored"] is True
    [crop] = _files(app, "crops")
    assert crop.suffix == ".png"


def test_only_the_owner_may_answer_a_stranger_gets_403(app, client):
    analysis = upload(client).get_json()
    for consent in (True, False):
        response = _feedback(client, analysis["id"], consent=consent)
        assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    assert _feedback(client, analysis["id"], token="not-the-token").status_code == 403
    assert _withdraw(client, analysis["id"]).status_code == 403
    assert _rows(app) == []


def test_answering_again_changes_the_one_answer_and_withdrawing_removes_it(app, client):
    analysis = upload(client).get_json()
    token, top = analysis["delete_token"], analysis["faces"][0]["top"]
    other = next(label for label in EMOTIONS if label != top)
    assert _feedback(client, analysis["id"], other, token=token).status_code == 201
    assert _rows(app) == [("correction", other, False)]
    confirmed = _feedback(client, analysis["id"], None, token=token, kind="confirmation").get_json()
    assert confirmed["kind"] == "confirmation" and confirmed["emotion"] == top
    assert _rows(app) == [("confirmation", top, False)]  # replaced, not added
    # Naming the predicted emotion is a confirmation too; a "confirmation" of another emotion is refused.
    assert _feedback(client, analysis["id"], top, token=token).get_json()["kind"] == "confirmation"
    refused = _feedback(client, analysis["id"], other, token=token, kind="confirmation")
    assert refused.status_code == 422
    assert _feedback(client, analysis["id"], other, token=token, kind="vote").status_code == 422
    assert _withdraw(client, analysis["id"], token=token).status_code == 204
    assert _rows(app) == []
    assert _withdraw(client, analysis["id"], token=token).status_code == 404


def test_withdrawing_an_answer_deletes_its_unshared_crop(app, client):
    analysis = upload(client).get_json()
    token = analysis["delete_token"]
    assert _feedback(client, analysis["id"], "sad", consent=True, token=token).get_json()["crop_stored"]
    assert len(_files(app, "crops")) == 1
    _feedback(client, analysis["id"], "fear", consent=False, token=token)  # changing without consent drops it
    assert _files(app, "crops") == []
    _feedback(client, analysis["id"], "fear", consent=True, token=token)
    _withdraw(client, analysis["id"], token=token)
    assert _files(app, "crops") == []


def test_the_browser_that_made_it_and_the_token_holder_answer_separately(app):
    browser = app.test_client()
    page = browser.get("/").get_data(as_text=True)
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    analysis = browser.post("/api/v1/predict", data={"image": (io.BytesIO(image_bytes()), "me.png")},
                            headers={"X-CSRFToken": csrf}).get_json()
    answer = browser.post("/api/v1/feedback", json={"analysis_id": analysis["id"], "face_index": 0,
                                                    "emotion": "sad"}, headers={"X-CSRFToken": csrf})
    assert answer.status_code == 201  # the session that made it owns it
    assert _feedback(app.test_client(), analysis["id"], "angry", token=analysis["delete_token"]).status_code == 201
    assert sorted(emotion for _, emotion, _ in _rows(app)) == ["angry", "sad"]


def test_consent_after_the_crop_left_memory_is_409(tmp_path):
    app = create_app(make_config(tmp_path, IMAGE_CACHE_SECONDS=0))
    client = app.test_client()
    analysis = upload(client).get_json()
    response = _feedback(client, analysis["id"], consent=True, token=analysis["delete_token"])
    assert response.status_code == 409 and response.get_json()["error"] == "crop_unavailable"


def test_unknown_analysis_or_face_is_404_and_bad_emotion_422(client):
    analysis = upload(client).get_json()
    token = analysis["delete_token"]
    assert _feedback(client, "nope", token=token).status_code == 404
    missing_face = _feedback(client, analysis["id"], face_index=3, token=token)
    assert missing_face.status_code == 404 and "no face 3" in missing_face.get_json()["message"]
    bad = _feedback(client, analysis["id"], emotion="bored", token=token)
    assert bad.status_code == 422 and bad.get_json()["error"] == "invalid_emotion"
    assert "angry" in bad.get_json()["message"]


def test_delete_removes_rows_and_only_unshared_files(app, client):
    same = image_bytes(seed=7)
    first, second = upload(client, same).get_json(), upload(client, same).get_json()
    for analysis in (first, second):
        _feedback(client, analysis["id"], "fear", consent=True, token=analysis["delete_token"])
    [shared_crop] = _files(app, "crops")  # identical crops are stored once
    client.delete(f"/api/v1/analyses/{first['id']}", headers={"X-Delete-Token": first["delete_token"]})
    assert _files(app, "crops") == [shared_crop]  # still used by the second analysis
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Face)) == 1
    client.delete(f"/api/v1/analyses/{second['id']}", headers={"X-Delete-Token": second["delete_token"]})
    assert _files(app, "crops") == []
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Correction)) == 0


def test_export_writes_a_folder_the_training_loader_reads(app, client, tmp_path):
    labels = ["happy", "sad", "happy"]
    for seed, label in enumerate(labels):
        analysis = upload(client, image_bytes(seed=seed)).get_json()
        _feedback(client, analysis["id"], label, consent=True, token=analysis["delete_token"])
    unconsented = upload(client).get_json()
    _feedback(client, unconsented["id"], "angry", token=unconsented["delete_token"])  # no consent: not exported
    out = tmp_path / "export"
    result = app.test_cli_runner().invoke(args=["export-corrections", str(out)])
    assert result.exit_code == 0 and "exported 3" in result.output
    with open(out / "corrections.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["emotion"] for row in rows] == labels
    assert all((out / row["file"]).is_file() and row["file"].startswith(row["emotion"] + "/") for row in rows)
    faces = load_folder(out)
    assert faces.images.shape == (3, 48, 48)
    assert sorted(faces.labels.tolist()) == sorted(EMOTIONS.index(label) for label in labels)
    assert np.all(faces.usage == 0)


def test_an_exported_correction_is_exactly_the_crop_the_classifier_saw(app, client, tmp_path):
    analysis = upload(client, image_bytes(seed=7), query="?crops=true").get_json()
    _feedback(client, analysis["id"], "sad", consent=True, token=analysis["delete_token"])
    app.test_cli_runner().invoke(args=["export-corrections", str(tmp_path / "export")])
    exported = load_folder(tmp_path / "export").images[0]
    # The model tier's crop for this face (squared, margined, grayscale, 48x48), as the analysis returned it.
    [request] = [r for r in app.extensions["emotion_lens.inference"].predictor.requests if r.want_crops]
    seen = app.extensions["emotion_lens.inference"].predictor.analyze(request).faces[0].crop
    np.testing.assert_array_equal(exported, seen)
