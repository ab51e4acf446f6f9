"""The HTML pages, including the no-JavaScript flow: upload form, permalink, correction, delete."""

from __future__ import annotations

import io
import re

from model_server.labels import EMOTIONS
from web_helpers import image_bytes, upload


def _token(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_home_page_has_labelled_controls(client):
    html = client.get("/").get_data(as_text=True)
    for control in ('for="image"', 'for="image_url"', 'for="keep_photo"', 'type="submit"', 'aria-live="polite"'):
        assert control in html


def test_no_javascript_flow_upload_correct_delete(client):
    token = _token(client.get("/").get_data(as_text=True))
    posted = client.post("/analyze", data={"csrf_token": token, "image": (io.BytesIO(image_bytes()), "me.png")},
                         content_type="multipart/form-data")
    permalink = posted.headers["Location"]
    page = client.get(permalink).get_data(as_text=True)
    assert page.count('class="bar') >= len(EMOTIONS) and "Wrong? Tell us the right emotion" in page
    assert 'name="consent_crop"' in page and "Delete this analysis" in page  # the owner sees both
    feedback_url = re.search(r'action="([^"]+/feedback)"', page).group(1)
    thanked = client.post(feedback_url, data={"csrf_token": token, "emotion": "happy", "consent_crop": "on"},
                          follow_redirects=True)
    assert "Thank you! Face 1 is now recorded as happy." in thanked.get_data(as_text=True)
    analysis_id = permalink.rsplit("/", 1)[1]
    deleted = client.post(f"/a/{analysis_id}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "were deleted" in deleted.get_data(as_text=True)
    assert client.get(permalink).status_code == 404


def test_permalink_for_others_has_no_delete_or_consent(app, client):
    analysis = upload(client).get_json()
    stranger = app.test_client()
    page = stranger.get(f"/a/{analysis['id']}").get_data(as_text=True)
    assert "Wrong? Tell us the right emotion" in page
    assert "Delete this analysis" not in page and 'name="consent_crop"' not in page
    assert "The photo was not stored" in page


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
