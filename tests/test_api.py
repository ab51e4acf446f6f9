"""The JSON API contract: predict, analyses, delete, health, OpenAPI, JSON 404/405."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from model_server.labels import EMOJI, EMOTIONS
from web_helpers import image_bytes, make_config, upload
from webapp import create_app


def test_predict_returns_the_documented_shape(client):
    response = upload(client)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= {"id", "model", "width", "height", "faces", "delete_token", "url"}
    assert (body["width"], body["height"]) == (128, 96)
    assert body["model"]["name"] == "fake" and body["model"]["labels"] == list(EMOTIONS)
    [face] = body["faces"]
    assert face["index"] == 0 and face["box"] == {"x": 32, "y": 24, "w": 64, "h": 48}
    assert list(face["emotions"]) == list(EMOTIONS)  # label order, not alphabetical
    assert sum(face["emotions"].values()) == pytest.approx(1.0)
    assert face["top"] == max(face["emotions"], key=face["emotions"].get)
    assert face["emoji"] == EMOJI[face["top"]]
    assert "annotated_image" not in body and "crop" not in face


def test_different_images_give_different_answers(client):
    first = upload(client, image_bytes(value=30)).get_json()["faces"][0]["emotions"]
    second = upload(client, image_bytes(value=220)).get_json()["faces"][0]["emotions"]
    assert first != second


def test_no_face_is_an_empty_list_not_an_error(client):
    response = upload(client, image_bytes(32, 32))
    assert response.status_code == 200 and response.get_json()["faces"] == []


def test_face_only_reads_a_picture_too_small_to_search_as_one_face(client):
    # The test predictor finds no face under 64 px, like a detector missing a close crop; face_only reads it.
    assert upload(client, image_bytes(32, 40)).get_json()["faces"] == []
    [face] = upload(client, image_bytes(32, 40), face_only="true").get_json()["faces"]
    assert face["box"] == {"x": 0, "y": 4, "w": 32, "h": 32}  # the largest centred square


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_are_accepted(client, fmt):
    assert upload(client, image_bytes(fmt=fmt), filename=f"x.{fmt.lower()}").status_code == 200


def test_annotate_and_crops_return_png_data_urls(client):
    body = upload(client, query="?annotate=true", crops="true").get_json()
    for data_url in (body["annotated_image"], body["faces"][0]["crop"]):
        assert data_url.startswith("data:image/png;base64,")
    annotated = Image.open(io.BytesIO(base64.b64decode(body["annotated_image"].split(",", 1)[1])))
    crop = Image.open(io.BytesIO(base64.b64decode(body["faces"][0]["crop"].split(",", 1)[1])))
    # The crop is what the classifier saw: 48x48 grayscale, not the raw box in colour.
    assert annotated.size == (128, 96) and crop.size == (48, 48) and crop.mode == "L"


def test_get_analysis_matches_the_prediction_without_the_token(client):
    predicted = upload(client).get_json()
    stored = client.get(f"/api/v1/analyses/{predicted['id']}").get_json()
    assert "delete_token" not in stored
    assert stored["faces"][0]["emotions"] == pytest.approx(predicted["faces"][0]["emotions"])
    assert stored["source"] == "upload" and stored["photo_url"] is None


def test_photo_is_kept_only_when_asked(app, client):
    upload(client)
    assert not (Path(app.config["MEDIA_DIR"]) / "photos").exists()
    body = upload(client, keep_photo="true").get_json()
    assert body["photo_url"]
    photo = client.get(body["photo_url"])
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"


def test_camera_source_is_recorded(client):
    body = upload(client, source="camera").get_json()
    assert client.get(f"/api/v1/analyses/{body['id']}").get_json()["source"] == "camera"


def test_delete_needs_the_token(app, client):
    body = upload(client, keep_photo="true").get_json()
    url = f"/api/v1/analyses/{body['id']}"
    assert client.delete(url).status_code == 403
    assert client.delete(url, headers={"X-Delete-Token": "wrong"}).status_code == 403
    assert client.delete(url, headers={"X-Delete-Token": body["delete_token"]}).status_code == 204
    gone = client.get(url)
    assert gone.status_code == 404 and gone.get_json()["error"] == "not_found"
    assert not any((Path(app.config["MEDIA_DIR"]) / "photos").iterdir())


def test_health_reports_model_and_database(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "model_loaded": True, "database": True}


def test_health_is_503_when_the_model_is_not_loaded(tmp_path):
    app = create_app(make_config(tmp_path, LAZY_MODEL=True, PREDICTOR="tests.no_such_module:factory"))
    client = app.test_client()
    response = client.get("/api/v1/health")
    assert response.status_code == 503 and response.get_json()["model_loaded"] is False
    failed = upload(client)
    assert failed.status_code == 503 and "model could not be loaded" in failed.get_json()["message"]


def test_openapi_document_lists_every_route(app, client):
    import re

    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    # Every API route the app serves (but the document itself) is described, with its methods.
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule.endswith("openapi.json"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule).replace("{analysis_id}", "{id}")
        described = next((item for key, item in document["paths"].items()
                          if re.sub(r"{[^}]+}", "{}", key) == re.sub(r"{[^}]+}", "{}", path)), None)
        assert described is not None, f"{rule.rule} is not in the OpenAPI document"
        assert {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}} <= set(described), rule.rule


def test_unknown_api_route_and_wrong_method_answer_json(client):
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    wrong = client.get("/api/v1/predict")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"


def test_image_option_returns_the_clean_upright_photo_for_pages_to_draw_on(client):
    body = upload(client, image_bytes(fmt="PNG"), query="?image=true").get_json()
    assert body["image"].startswith("data:image/jpeg;base64,")
    photo = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert photo.size == (128, 96) and photo.format == "JPEG" and not photo.getexif()
    assert "image" not in upload(client).get_json()


def test_links_use_the_configured_public_address_not_the_hosts_header(tmp_path):
    app = create_app(make_config(tmp_path, PUBLIC_BASE_URL="https://emotions.example.org"))
    form = {"image": (io.BytesIO(image_bytes()), "face.png")}
    body = app.test_client().post("/api/v1/predict", data=form, content_type="multipart/form-data",
                                  headers={"Host": "evil.example"}).get_json()
    assert body["url"] == f"https://emotions.example.org/a/{body['id']}"
