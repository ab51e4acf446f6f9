"""Emoji rooms over /room: joining, leaving, reconnecting, host loss, privacy, the mood strip and recording."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sqlalchemy import select

from model_server.labels import EMOTIONS
from test_model_tier_web import redis_prefix  # noqa: F401 - a key prefix in the test Redis (skips without Redis)
from web_helpers import image_bytes
from webapp.db import get_session
from webapp.extensions import socketio
from webapp.models import RoomMinute

NS = "/room"
TILE_KEYS = {"id", "name", "state", "emoji", "top", "emotions"}


@pytest.fixture(params=["memory", "redis"])
def app_config(app_config, request):
    """Small rooms so the size limit is cheap to reach; every test runs with rooms in memory and in Redis."""
    config = {**app_config, "ROOM_MAX_PARTICIPANTS": 3}
    if request.param == "redis":
        from topology_helpers import REDIS_URL

        config.update(ROOM_STORE_URL=REDIS_URL, ROOM_STORE_PREFIX=request.getfixturevalue("redis_prefix") + ":")
    return config


def create_room(client) -> str:
    """Create a room through the page form (CSRF token and all); the client's session becomes the host."""
    page = client.get("/rooms/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/rooms/", data={"csrf_token": token})
    assert answer.status_code == 303
    return re.fullmatch(r"/rooms/([\w-]+)/host", answer.headers["Location"]).group(1)


class Room:
    """A room with its host connected, and a way to add participants (each with their own browser)."""

    def __init__(self, app, client):
        self.app, self.id = app, create_room(client)
        self.host = socketio.test_client(app, namespace=NS, flask_test_client=client)
        self.host_state = self.host.emit("host", {"room": self.id}, namespace=NS, callback=True)
        self.clients = [self.host]

    def join(self, name: str, **extra):
        """A new participant's connection and its join answer."""
        person = socketio.test_client(self.app, namespace=NS, flask_test_client=self.app.test_client())
        self.clients.append(person)
        return person, person.emit("join", {"room": self.id, "name": name, **extra}, namespace=NS, callback=True)

    def close(self):
        for connection in self.clients:
            if connection.is_connected(NS):
                connection.disconnect(namespace=NS)


@pytest.fixture
def room(app, client):
    room = Room(app, client)
    yield room
    room.close()


def call(connection, event, data=None):
    """Emit and return the ack."""
    return connection.emit(event, {} if data is None else data, namespace=NS, callback=True)


def events(connection, name: str) -> list:
    """First arguments of the events of one name received so far (clears the client's queue)."""
    return [event["args"][0] for event in connection.get_received(NS) if event["name"] == name]


def jpeg(value: int) -> bytes:
    """A one-colour JPEG frame: the fake predictor finds one face whose scores follow the brightness."""
    return image_bytes(160, 120, fmt="JPEG", value=value)


def fake_scores(app, value: int) -> dict[str, float]:
    """The probabilities the fake model gives a frame (what the room should be told)."""
    from webapp.inference import get_predictor
    from model_server.api import AnalysisRequest

    with app.app_context():
        return get_predictor().analyze(AnalysisRequest(jpeg(value), mode="live")).faces[0].emotions


def test_host_page_needs_the_session_that_created_the_room(room, app):
    stranger = app.test_client()
    assert stranger.get(f"/rooms/{room.id}").status_code == 200
    assert stranger.get(f"/rooms/{room.id}/host").status_code == 302  # sent to the participant view
    assert stranger.get("/rooms/not-a-room").status_code == 404
    assert len(room.id) >= 20  # token_urlsafe(16): unguessable
    intruder = socketio.test_client(app, namespace=NS, flask_test_client=stranger)
    assert call(intruder, "host", {"room": room.id})["error"] == "forbidden"
    intruder.disconnect(namespace=NS)
    assert room.host_state["tiles"] == [] and room.host_state["host_present"]


def test_joining_shows_a_paused_tile_to_everyone(room):
    events(room.host, "tile")
    _ann, answer = room.join("Ann")
    assert answer["participant"] and answer["token"]
    [tile] = answer["tiles"]
    assert tile == {"id": answer["participant"], "name": "Ann", "state": "paused"}
    assert events(room.host, "tile") == [tile]


def test_bad_joins_are_refused(room, app):
    assert room.join("   ")[1]["error"] == "invalid_request"
    assert room.join("x" * 41)[1]["error"] == "invalid_request"
    person = socketio.test_client(app, namespace=NS, flask_test_client=app.test_client())
    assert call(person, "join", {"room": "nope", "name": "Bo"})["error"] == "not_found"
    person.disconnect(namespace=NS)
    for name in ("A", "B", "C"):
        assert "participant" in room.join(name)[1]
    assert room.join("D")[1]["error"] == "room_full"


def test_names_are_cleaned_of_control_characters(room):
    assert room.join("  Ann\u0000\n  Lee ")[1]["tiles"][0]["name"] == "Ann Lee"


def test_room_sees_only_results_never_frames(room, app):
    ann, _ = room.join("Ann")
    bob, _ = room.join("Bob")
    # Frames are refused until the participant turns sharing on.
    assert call(ann, "frame", jpeg(90))["error"] == "not_sharing"
    assert call(ann, "share", {"on": True})["state"] == "no_face"
    own = call(ann, "frame", jpeg(90))
    expected = fake_scores(app, 90)
    assert own["state"] == "sharing" and own["emotions"] == pytest.approx(expected)
    assert own["top"] == max(expected, key=expected.get)
    received = bob.get_received(NS)
    # Everything Bob's client got: tiles and statuses, no bytes, no images, no boxes, no frame numbers.
    for event in received:
        for argument in event["args"]:
            assert_no_picture(argument)
    tiles = [event["args"][0] for event in received if event["name"] == "tile"]
    assert tiles[-1] == own, "the participant sees exactly what the room sees"
    assert all(set(tile) <= TILE_KEYS for tile in tiles)


def assert_no_picture(value) -> None:
    """Fail on bytes, data URLs or image/box fields anywhere in a received payload."""
    assert not isinstance(value, (bytes, bytearray)), "binary data reached another participant"
    if isinstance(value, str):
        assert not value.startswith("data:"), "an encoded image reached another participant"
    elif isinstance(value, dict):
        assert not {"frame", "image", "crop", "box", "jpeg", "annotated_image"} & set(value)
        for item in value.values():
            assert_no_picture(item)
    elif isinstance(value, list):
        for item in value:
            assert_no_picture(item)


def test_pause_hides_the_result_and_refuses_frames(room):
    ann, answer = room.join("Ann")
    call(ann, "share", {"on": True})
    call(ann, "frame", jpeg(90))
    events(room.host, "tile")
    paused = call(ann, "share", {"on": False})
    assert paused == {"id": answer["participant"], "name": "Ann", "state": "paused"}
    assert events(room.host, "tile") == [paused]
    assert call(ann, "frame", jpeg(90))["error"] == "not_sharing"
    assert events(room.host, "tile") == []


def test_leaving_removes_the_tile_at_once(room):
    ann, answer = room.join("Ann")
    events(room.host, "left")
    assert call(ann, "leave") == {"left": True}
    assert events(room.host, "left") == [{"id": answer["participant"]}]
    assert call(ann, "frame", jpeg(90))["error"] == "not_sharing"


def test_a_dropped_participant_is_away_and_rejoins_as_themselves(room):
    ann, answer = room.join("Ann")
    call(ann, "share", {"on": True})
    call(ann, "frame", jpeg(90))
    events(room.host, "tile")
    ann.disconnect(namespace=NS)
    assert events(room.host, "tile") == [{"id": answer["participant"], "name": "Ann", "state": "away"}]
    _again, rejoined = room.join("Ann", rejoin=answer["token"])
    assert rejoined["participant"] == answer["participant"]
    assert [tile["state"] for tile in rejoined["tiles"]] == ["paused"]  # sharing restarts only when asked
    _other, stranger = room.join("Ann", rejoin="a-wrong-token")
    assert stranger["participant"] != answer["participant"]


def test_participants_away_past_the_grace_are_dropped(app, client):
    app.config["ROOM_RECONNECT_SECONDS"] = 0
    room = Room(app, client)
    try:
        ann, answer = room.join("Ann")
        ann.disconnect(namespace=NS)
        events(room.host, "left")
        _bob, joined = room.join("Bob")
        assert [tile["name"] for tile in joined["tiles"]] == ["Bob"]
        assert events(room.host, "left") == [{"id": answer["participant"]}]
    finally:
        room.close()


def test_host_loss_is_announced_and_the_host_can_come_back(room, client, app):
    ann, _ = room.join("Ann")
    events(ann, "host")
    room.host.disconnect(namespace=NS)
    assert events(ann, "host") == [{"present": False}]
    back = socketio.test_client(app, namespace=NS, flask_test_client=client)
    room.clients.append(back)
    state = call(back, "host", {"room": room.id})
    assert state["host_present"] and [tile["name"] for tile in state["tiles"]] == ["Ann"]
    assert events(ann, "host") == [{"present": True}]


def test_a_host_away_too_long_closes_the_room(app, client):
    app.config["ROOM_HOST_GRACE_SECONDS"] = 0
    room = Room(app, client)
    try:
        ann, _ = room.join("Ann")
        room.host.disconnect(namespace=NS)
        assert room.join("Bob")[1]["error"] == "not_found"
        assert events(ann, "closed") == [{"reason": "the host left"}]
        assert client.get(f"/rooms/{room.id}").status_code == 404
    finally:
        room.close()


def test_rooms_nobody_hosts_make_way_for_new_ones(app, client):
    app.config.update(ROOM_MAX_ROOMS=2, ROOM_HOST_GRACE_SECONDS=0)
    abandoned = create_room(client)  # created, but its host page never connected
    room = Room(app, client)
    try:
        fresh = create_room(client)  # the store was full: the abandoned room was closed to make room
        assert client.get(f"/rooms/{abandoned}").status_code == 404
        assert client.get(f"/rooms/{room.id}").status_code == 200 and fresh != abandoned
    finally:
        room.close()


def test_sharing_keeps_the_room_tidy(app, client):
    app.config["ROOM_RECONNECT_SECONDS"] = 0
    room = Room(app, client)
    try:
        ann, _ = room.join("Ann")
        bob, joined = room.join("Bob")
        call(ann, "share", {"on": True})
        bob.disconnect(namespace=NS)
        app.extensions["emotion_lens.rooms"].tidied.clear()  # as if the last tidy was long ago
        events(ann, "left")
        call(ann, "frame", jpeg(90))
        assert events(ann, "left") == [{"id": joined["participant"]}]
    finally:
        room.close()


def test_only_the_host_gets_the_mood_strip(room):
    ann, _ = room.join("Ann")
    assert call(ann, "mood")["error"] == "forbidden"
    assert call(ann, "recording", {"on": True})["error"] == "forbidden"


def test_mood_strip_weighs_every_participant_once(room, app):
    ann, _ = room.join("Ann")
    bob, _ = room.join("Bob")
    for person in (ann, bob):
        call(person, "share", {"on": True})
    for value in (40, 40, 40):  # Ann sends three frames, Bob one: each still counts once
        call(ann, "frame", jpeg(value))
    call(bob, "frame", jpeg(220))
    with app.extensions["emotion_lens.rooms"].store.edit(room.id) as stored:  # a minute older than the strip
        stored.mood[min(stored.mood) - app.config["ROOM_MOOD_MINUTES"]] = {"x": [1.0] * 7 + [1.0]}
    [minute] = call(room.host, "mood")["minutes"]
    assert minute["participants"] == 2
    ann_scores, bob_scores = fake_scores(app, 40), fake_scores(app, 220)
    expected = {label: (ann_scores[label] + bob_scores[label]) / 2 for label in EMOTIONS}
    assert minute["shares"] == pytest.approx(expected, abs=1e-4)
    assert sum(minute["shares"].values()) == pytest.approx(1.0, abs=1e-3)


def recorded(app) -> list[RoomMinute]:
    with app.app_context():
        return get_session().scalars(select(RoomMinute)).all()


def test_nothing_is_recorded_without_everyones_consent(room, app):
    ann, _ = room.join("Ann")
    bob, _ = room.join("Bob")
    state = call(room.host, "recording", {"on": True})
    assert state == {"requested": True, "active": False, "agreed": 0, "of": 2}
    assert events(ann, "recording")[-1] == state  # participants are asked
    assert call(ann, "consent", {"agree": True})["active"] is False  # Bob has not agreed
    for person in (ann, bob):
        call(person, "share", {"on": True})
        call(person, "frame", jpeg(90))
    call(room.host, "recording", {"on": False})
    assert recorded(app) == []


def test_recording_keeps_only_per_minute_aggregates(room, app, client):
    ann, _ = room.join("Ann")
    bob, _ = room.join("Bob")
    call(room.host, "recording", {"on": True})
    call(ann, "consent", {"agree": True})
    assert call(bob, "consent", {"agree": True}) == {"requested": True, "active": True, "agreed": 2, "of": 2}
    for person, value in ((ann, 40), (bob, 220)):
        call(person, "share", {"on": True})
        call(person, "frame", jpeg(value))
    call(room.host, "recording", {"on": False})
    [row] = recorded(app)
    assert (row.participants, row.samples) == (2, 2)
    ann_scores, bob_scores = fake_scores(app, 40), fake_scores(app, 220)
    assert row.shares == pytest.approx({k: (ann_scores[k] + bob_scores[k]) / 2 for k in EMOTIONS}, abs=1e-4)
    assert room.id not in row.room_hash  # the link itself is never stored
    # The host (and only the host) can read what was recorded.
    [minute] = client.get(f"/rooms/{room.id}/minutes").get_json()["minutes"]
    assert minute["participants"] == 2 and np.isclose(sum(minute["shares"].values()), 1.0, atol=1e-3)
    assert app.test_client().get(f"/rooms/{room.id}/minutes").status_code == 403


def test_a_newcomer_puts_recording_on_hold_until_they_agree(room):
    ann, _ = room.join("Ann")
    call(room.host, "recording", {"on": True})
    assert call(ann, "consent", {"agree": True})["active"] is True
    cy, _ = room.join("Cy")
    state = events(room.host, "recording")[-1]
    assert state == {"requested": True, "active": False, "agreed": 1, "of": 2}
    assert call(cy, "consent", {"agree": True})["active"] is True
    room.host.disconnect(namespace=NS)  # no host, no recording
    assert events(ann, "recording")[-1]["active"] is False


def test_closing_the_room_tells_everyone(room, client):
    ann, _ = room.join("Ann")
    assert call(room.host, "close") == {"closed": True}
    assert events(ann, "closed") == [{"reason": "the host closed the room"}]
    assert client.get(f"/rooms/{room.id}").status_code == 404


def test_pages_say_what_is_inferred_and_what_it_is_not_for(client, room):
    for url in ("/rooms/", f"/rooms/{room.id}", f"/rooms/{room.id}/host"):
        text = client.get(url).get_data(as_text=True)
        assert "not know what anyone feels" in text and "Art.&nbsp;5(1)(f)" in text
        assert "students" in text and "employees" in text


# --- several web processes: rooms in Redis ---------------------------------------------------------------------

@pytest.fixture(params=["memory", "redis"])
def store(request):
    """Both room stores, built the way the app builds them, so one set of tests holds for both."""
    from topology_helpers import REDIS_URL
    from webapp.rooms.store import make_room_store

    if request.param == "memory":
        return make_room_store({"ROOM_STORE_URL": None})
    return make_room_store({"ROOM_STORE_URL": REDIS_URL,
                            "ROOM_STORE_PREFIX": request.getfixturevalue("redis_prefix") + ":"})


def test_both_stores_keep_rooms_the_same_way(store):
    from webapp.rooms.store import Participant, Room

    store.create(Room(id="r1"))
    with store.edit("r1") as room:
        room.recording = True
        room.participants["p"] = Participant(id="p", name="Ann", token_hash="h", sid="s1", sharing=True,
                                             result={"emoji": "x", "top": "happy", "emotions": {"happy": 1.0}})
        room.mood[29000000] = {"p": [0.5] * 8}
    with store.edit("r1") as room:
        assert room.recording and room.participants["p"].result["top"] == "happy"
        assert room.mood == {29000000: {"p": [0.5] * 8}}  # minute numbers stay numbers
    with store.edit("missing") as room:
        assert room is None
    looked = store.get("r1")  # a read-only copy: changing it changes nothing
    looked.recording = False
    assert store.get("r1").recording and store.get("missing") is None
    store.bind("s1", "r1", "p")
    assert store.member("s1") == ("r1", "p") and store.count() == 1 and store.room_ids() == ["r1"]
    store.delete("r1")
    assert store.member("s1") is None and store.count() == 0
    with store.edit("r1") as room:
        assert room is None


def test_a_room_in_redis_is_shared_by_two_web_processes(app_config, redis_prefix):
    """Two apps (as two processes would be) on one Redis store: the host on one, a participant on the other."""
    from topology_helpers import REDIS_URL
    from webapp import create_app
    from webapp.inference import close_predictor

    shared = {"ROOM_STORE_URL": REDIS_URL, "ROOM_STORE_PREFIX": redis_prefix + ":"}
    first = create_app({**app_config, **shared})
    second = create_app({**app_config, **shared})  # the same database, as processes of one site share it
    try:
        host_browser = first.test_client()
        room = Room(first, host_browser)
        assert second.test_client().get(f"/rooms/{room.id}").status_code == 200  # the link works on both
        ann = socketio.test_client(second, namespace=NS, flask_test_client=second.test_client())
        joined = call(ann, "join", {"room": room.id, "name": "Ann"})
        call(ann, "share", {"on": True})
        tile = call(ann, "frame", jpeg(90))
        # The host, on the other process, finds Ann's tile and her result in the strip.
        again = socketio.test_client(first, namespace=NS, flask_test_client=host_browser)
        snapshot = call(again, "host", {"room": room.id})
        assert snapshot["tiles"] == [tile] and tile["id"] == joined["participant"]
        [minute] = call(again, "mood")["minutes"]
        assert minute["participants"] == 1 and minute["shares"] == pytest.approx(fake_scores(second, 90), abs=1e-4)
        for connection in (ann, again):
            connection.disconnect(namespace=NS)
        room.close()
    finally:
        for each in (first, second):
            close_predictor(each)
            each.extensions["emotion_lens.rooms"].store.close()
            each.extensions["emotion_lens.db"].engine.dispose()


def test_malformed_events_get_validation_errors(room, app):
    ann, _ = room.join("Ann")
    assert ann.emit("share", namespace=NS, callback=True)["error"] == "invalid_request"
    assert ann.emit("share", {"on": "yes"}, namespace=NS, callback=True)["error"] == "invalid_request"
    assert ann.emit("consent", {"agree": True}, "extra", namespace=NS, callback=True)["agreed"] == 1
    call(ann, "share", {"on": True})
    assert ann.emit("frame", namespace=NS, callback=True)["error"] == "invalid_frame"
    assert call(ann, "frame", "not a jpeg")["error"] == "invalid_frame"
    stranger = socketio.test_client(app, namespace=NS, flask_test_client=app.test_client())
    assert stranger.emit("join", namespace=NS, callback=True)["error"] == "invalid_request"
    assert call(stranger, "join", {"room": room.id, "name": 7})["error"] == "invalid_request"
    stranger.disconnect(namespace=NS)
