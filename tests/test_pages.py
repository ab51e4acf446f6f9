"""The HTML pages, including the no-JavaScript flow: upload form, permalink, correction, delete."""

from __future__ import annotations

import io
import re

from fakes_crowd import CROWD_SPEC, grid_boxes
from model_server.api import Box
from model_server.labels import EMOTIONS
from web_helpers import image_bytes, upload
from webapp.analyses import APPEARANCE_NOTE, reading_order


def _token(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_home_page_has_labelled_controls(client):
    html = client.get("/").get_data(as_text=True)
    for control in ('for="image"', 'for="image_url"', 'for="keep_photo"', 'for="face_only"', 'type="submit"',
                    'aria-live="polite"'):
        assert control in html


def test_no_javascript_flow_upload_correct_delete(client):
    token = _token(client.get("/").get_data(as_text=True))
    posted = client.post("/analyze", data={"csrf_token": token, "image": (io.BytesIO(image_bytes()), "me.png")},
                         content_type="multipart/form-data")
    permalink = posted.headers["Location"]
    page = client.get(permalink).get_data(as_text=True)
    assert page.count('class="bar') >= len(EMOTIONS) and "Yes, it&rsquo;s right" in page
    assert 'name="consent_crop"' in page and "Delete this analysis" in page  # the owner sees both
    assert 'aria-pressed="true"' not in page
    feedback_url = re.search(r'action="([^"]+/feedback)"', page).group(1)
    top = re.search(r'data-top="(\w+)"', page).group(1)
    other = next(label for label in EMOTIONS if label != top)
    thanked = client.post(feedback_url, data={"csrf_token": token, "emotion": other, "consent_crop": "on"},
                          follow_redirects=True).get_data(as_text=True)
    assert f"Your answer for this face is now \u201c{other}\u201d." in thanked
    assert re.search(rf'value="{other}" data-emotion="{other}"\s+aria-pressed="true"', thanked)
    confirmed = client.post(feedback_url, data={"csrf_token": token, "kind": "confirmation"},
                            follow_redirects=True).get_data(as_text=True)
    assert f"now \u201c{top}\u201d" in confirmed and "Your answer: it&#39;s right." in confirmed
    withdrawn = client.post(feedback_url + "/withdraw", data={"csrf_token": token}, follow_redirects=True)
    assert "was withdrawn" in withdrawn.get_data(as_text=True)
    assert 'aria-pressed="true"' not in withdrawn.get_data(as_text=True)
    analysis_id = permalink.rsplit("/", 1)[1]
    deleted = client.post(f"/a/{analysis_id}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "were deleted" in deleted.get_data(as_text=True)
    assert client.get(permalink).status_code == 404


def test_permalink_for_others_is_read_only(app, client):
    analysis = upload(client).get_json()
    stranger = app.test_client()
    page = stranger.get(f"/a/{analysis['id']}").get_data(as_text=True)
    assert "read-only" in page and 'class="feedback"' not in page
    assert "Delete this analysis" not in page and 'name="consent_crop"' not in page
    assert "The photo was not stored" in page
    token = _token(page)
    refused = stranger.post(f"/a/{analysis['id']}/faces/0/feedback", data={"csrf_token": token, "emotion": "sad"})
    assert refused.status_code == 403


def test_every_result_says_it_reads_appearance_not_feelings(client):
    analysis = upload(client).get_json()
    assert analysis["note"] == APPEARANCE_NOTE and "not tell what a person feels" in APPEARANCE_NOTE
    assert client.get(f"/api/v1/analyses/{analysis['id']}").get_json()["note"] == APPEARANCE_NOTE
    assert APPEARANCE_NOTE in client.get(f"/a/{analysis['id']}").get_data(as_text=True)
    assert APPEARANCE_NOTE in client.get("/live").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/responsible-use"' in home  # the footer of every page


def test_the_responsible_use_page_names_figures_storage_and_the_ai_act(client):
    html = client.get("/responsible-use").get_data(as_text=True)
    for words in ("FER2013", "Article&nbsp;5(1)(f)", "students", "employees", "not stored", "10 minutes",
                  "fake-1"):
        assert words in html, words


def test_no_face_says_what_is_most_likely_and_what_helps(client):
    tiny = upload(client, image_bytes(48, 40)).get_json()
    page = client.get(f"/a/{tiny['id']}").get_data(as_text=True)
    assert "No face found" in page and "The image is small (48\u00d740 pixels)" in page
    assert "\u201cThe picture is one face\u201d ticked" in page  # the way out for a close crop


def test_the_form_reads_a_picture_marked_as_one_face_without_searching(client):
    token = _token(client.get("/").get_data(as_text=True))
    form = {"csrf_token": token, "image": (io.BytesIO(image_bytes(48, 40)), "face.png"), "face_only": "on"}
    posted = client.post("/analyze", data=form, content_type="multipart/form-data")
    page = client.get(posted.headers["Location"]).get_data(as_text=True)
    assert "No face found" not in page and page.count('class="bar') >= len(EMOTIONS)


def test_reading_order_numbers_rows_top_to_bottom_then_left_to_right():
    # Two rows, the second face of row one a little higher; the model lists them largest first.
    boxes = [Box(300, 10, 60, 60), Box(10, 20, 50, 50), Box(150, 30, 40, 40), Box(200, 150, 50, 50),
             Box(20, 160, 45, 45)]
    assert reading_order(boxes) == [3, 1, 2, 5, 4]
    assert reading_order([]) == []
    grid = grid_boxes(1000, 800)
    assert reading_order(sorted(grid, key=lambda b: -b.w)) and reading_order(grid) == list(range(1, 21))


def test_a_crowded_result_is_compact_numbered_and_keeps_the_api_index(app_config, request):
    app_config["PREDICTOR"] = CROWD_SPEC
    client = request.getfixturevalue("client")
    analysis = upload(client, image_bytes(1000, 800)).get_json()
    faces = analysis["faces"]
    assert [face["index"] for face in faces] == list(range(20))  # the model's order (largest first) stays
    assert sorted(face["number"] for face in faces) == list(range(1, 21))
    by_number = sorted(faces, key=lambda face: face["number"])
    assert [face["box"] for face in by_number] == [box.as_dict() for box in grid_boxes(1000, 800)]
    page = client.get(f"/a/{analysis['id']}").get_data(as_text=True)
    assert 'class="analysis compact"' in page and page.count("<summary>") == 20
    assert re.findall(r'class="box-label" aria-hidden="true" data-number="(\d+)"', page) == \
        [str(n) for n in range(1, 21)]


def test_form_errors_are_shown_on_the_form(client):
    token = _token(client.get("/").get_data(as_text=True))
    response = client.post("/analyze", data={"csrf_token": token, "image": (io.BytesIO(b"text"), "x.txt")},
                           content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    # The form itself comes back with the message, so the visitor can choose another file at once.
    assert response.status_code == 415 and "not an image" in html and 'id="upload-form"' in html
    truncated = image_bytes()[:200]
    response = client.post("/analyze", data={"csrf_token": token, "image": (io.BytesIO(truncated), "x.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and 'id="upload-form"' in response.get_data(as_text=True)


def test_unknown_page_is_an_html_404(client):
    response = client.get("/a/does-not-exist", headers={"Accept": "text/html"})
    assert response.status_code == 404 and "<html" in response.get_data(as_text=True)


def test_the_responsible_use_page_stays_readable_while_the_model_is_down(tmp_path):
    from web_helpers import make_config
    from webapp import create_app

    app = create_app(make_config(tmp_path, LAZY_MODEL=True, PREDICTOR="tests.no_such_module:factory"))
    response = app.test_client().get("/responsible-use")
    assert response.status_code == 200 and "(model not loaded)" in response.get_data(as_text=True)
