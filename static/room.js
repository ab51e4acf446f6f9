// Emoji rooms: the host view (tiles, mood strip, recording) and the participant view (join, share, pause, leave).
// A participant's frames go only to the server on their own connection; the room gets back emoji tiles.
"use strict";

(() => {
  const root = document.getElementById("room");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const ROOM = root.dataset.room, HOST = root.dataset.role === "host";
  const EMOTIONS = root.dataset.emotions.split(",");
  const EMOJI = JSON.parse(root.dataset.emoji);
  const COLORS = window.EmotionColors;
  // Stay under the server's per-participant budget; an emoji needs no webcam rate.
  const MIN_INTERVAL_MS = 1000 / Number(root.dataset.maxFps || 4);
  const ACK_TIMEOUT_MS = 10000, MOOD_POLL_MS = 5000;
  const STATE_TEXT = {away: "reconnecting…", paused: "paused", no_face: "no face in view"};
  const REJOIN_KEY = `emotion-lens-room-${ROOM}`;  // per tab: a reload rejoins as the same participant

  const tiles = new Map();  // participant id -> tile
  let myConsent = null;  // this person's answer to the current recording request (null: not asked yet)
  let socket = null, me = null, name = "", stream = null, sharing = false, lastSentAt = 0, moodTimer = null;

  const say = (message) => { $("room-status").textContent = message; };
  const fail = (message) => { $("room-error").textContent = message; };

  function connect() {
    // WebSocket only: long-polling would send every binary frame as a separate HTTP request.
    socket = io("/room", {transports: ["websocket"], reconnectionDelayMax: 5000});
    socket.on("connect", HOST ? hostIn : rejoin);
    socket.on("disconnect", () => say("Disconnected; reconnecting…"));
    socket.on("connect_error", () => fail("The room cannot be reached; retrying…"));
    socket.on("error", (body) => fail((body && body.message) || "The server refused a request."));
    socket.on("tile", (tile) => { tiles.set(tile.id, tile); drawTiles(); });
    socket.on("left", ({id}) => { tiles.delete(id); drawTiles(); });
    socket.on("host", ({present}) => say(present ? "The host is here." : "The host is away."));
    socket.on("recording", showRecording);
    socket.on("closed", ({reason}) => { stopCamera(); socket.disconnect(); say(`The room has closed (${reason}).`); });
  }

  function snapshot(answer) {
    tiles.clear();
    for (const tile of answer.tiles) tiles.set(tile.id, tile);
    drawTiles();
    showRecording(answer.recording);
  }

  // --- host ---------------------------------------------------------------------------------------------------
  function hostIn() {
    socket.emit("host", {room: ROOM}, (answer) => {
      if (!answer || answer.error) { fail((answer && answer.message) || "This room cannot be hosted here."); return; }
      fail(""); say("You are hosting this room.");
      snapshot(answer);
      pollMood();
    });
  }

  function pollMood() {
    clearTimeout(moodTimer);
    if (!socket || !socket.connected) return;
    socket.timeout(ACK_TIMEOUT_MS).emit("mood", {}, (timedOut, answer) => {
      if (!timedOut && answer && answer.minutes) drawMood(answer.minutes);
      moodTimer = setTimeout(pollMood, MOOD_POLL_MS);
    });
  }

  function drawMood(minutes) {
    $("room-mood").replaceChildren(...minutes.map((minute) => {
      const column = document.createElement("li");
      const time = new Date(minute.minute).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
      const parts = EMOTIONS.map((label) => `${Math.round(100 * minute.shares[label])}% ${label}`).join(", ");
      column.setAttribute("aria-label", `${time}, ${minute.participants} sharing: ${parts}`);
      column.title = column.getAttribute("aria-label");
      EMOTIONS.forEach((label, i) => {
        const part = document.createElement("span");
        part.className = "mood-part";
        part.dataset.emotion = label;
        part.style.background = COLORS[i];
        part.style.height = `${(100 * minute.shares[label]).toFixed(2)}%`;
        column.append(part);
      });
      return column;
    }));
  }

  function setRecording() {
    socket.emit("recording", {on: $("room-record").checked}, (answer) => {
      if (answer && answer.error) fail(answer.message);
    });
  }

  // --- participant --------------------------------------------------------------------------------------------
  function rejoin() {
    if (!name) { say("Choose a display name and join."); return; }
    const payload = {room: ROOM, name, rejoin: sessionStorage.getItem(REJOIN_KEY)};
    socket.emit("join", payload, (answer) => {
      if (!answer || answer.error) { fail((answer && answer.message) || "You could not join."); return; }
      fail("");
      me = answer.participant;
      sessionStorage.setItem(REJOIN_KEY, answer.token);
      snapshot(answer);
      $("room-join").hidden = true;
      $("room-me").hidden = false;
      say(answer.host_present ? "You are in the room." : "You are in the room; the host is away.");
      // After a reconnect the server starts everyone paused; resume if this person was sharing.
      if (sharing) setShare(true);
    });
  }

  async function startSharing() {
    fail("");
    if (!navigator.mediaDevices) { fail("This browser cannot open the camera here (it needs HTTPS or localhost)."); return; }
    try {
      stream = stream || await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
    } catch (error) {
      fail(`The camera could not be opened (${error.name}). Allow it in the address bar and try again.`);
      return;
    }
    $("room-video").srcObject = stream;
    await $("room-video").play();
    setShare(true);
  }

  function setShare(on) {
    socket.emit("share", {on}, (answer) => {
      if (!answer || answer.error) { fail((answer && answer.message) || "Sharing could not be changed."); return; }
      sharing = on;
      $("room-share").disabled = on;
      $("room-pause").disabled = !on;
      say(on ? "Sharing your expression as an emoji." : "Paused: the room sees you as paused.");
      if (on) scheduleFrame(); else stopCamera();
    });
  }

  function stopCamera() {
    if (stream) stream.getTracks().forEach((track) => track.stop());  // the camera light goes off
    stream = null;
    if ($("room-video")) $("room-video").srcObject = null;
  }

  function scheduleFrame() {
    // Paced by acknowledgement: one frame in flight at most, and never faster than the room's budget.
    if (!sharing) return;
    setTimeout(sendFrame, Math.max(0, lastSentAt + MIN_INTERVAL_MS - performance.now()));
  }

  function sendFrame() {
    const video = $("room-video");
    if (!sharing || !socket || !socket.connected || !video.videoWidth) {
      if (sharing) setTimeout(sendFrame, 200);
      return;
    }
    window.captureCameraFrame(video).then((buffer) => {
      if (!buffer || !socket) { scheduleFrame(); return; }
      lastSentAt = performance.now();
      // The answer is this person's own tile, the same one the room receives.
      socket.timeout(ACK_TIMEOUT_MS).emit("frame", buffer, () => scheduleFrame());
    });
  }

  function leave() {
    sharing = false;
    stopCamera();
    socket.emit("leave", {}, () => {
      sessionStorage.removeItem(REJOIN_KEY);
      socket.disconnect();
      tiles.clear(); drawTiles();
      say("You left the room. Reload the page to join again.");
      $("room-me").hidden = true;
      $("room-consent").hidden = true;
    });
  }

  function consent(agree) {
    myConsent = agree;
    socket.emit("consent", {agree}, () => { $("room-consent").hidden = true; });
  }

  // --- both ---------------------------------------------------------------------------------------------------
  function showRecording(state) {
    if (!state) return;
    const text = !state.requested ? "Not recording." : state.active
      ? `Recording per-minute room averages (all ${state.of} participants agreed).`
      : `Recording is on hold: ${state.agreed} of ${state.of} participants agreed.`;
    $("room-recording").textContent = text;
    if (HOST) $("room-record").checked = state.requested;
    else {
      if (!state.requested) myConsent = null;  // a new request asks again
      $("room-consent").hidden = !(state.requested && me && myConsent === null);
    }
  }

  function drawTiles() {
    $("room-empty").hidden = tiles.size > 0;
    $("room-tiles").replaceChildren(...[...tiles.values()].map((tile) => {
      const item = document.createElement("li");
      item.className = `room-tile${tile.id === me ? " me" : ""}`;
      item.dataset.id = tile.id;
      item.dataset.state = tile.state;
      const emoji = document.createElement("span");
      emoji.className = "tile-emoji";
      emoji.setAttribute("aria-hidden", "true");
      emoji.textContent = tile.state === "sharing" ? tile.emoji : "\u{1F636}";
      const nameLine = document.createElement("span");
      nameLine.className = "tile-name";
      nameLine.textContent = tile.id === me ? `${tile.name} (you)` : tile.name;  // text, never HTML
      const label = document.createElement("span");
      label.className = "tile-label";
      label.textContent = tile.state === "sharing" ? `looks ${tile.top}` : STATE_TEXT[tile.state];
      item.append(emoji, nameLine, document.createElement("br"), label);
      return item;
    }));
  }

  if (!window.io) { fail("The room needs its scripts; reload the page."); return; }
  connect();
  if (HOST) {
    window.drawEmotionLegend($("room-mood-legend"), EMOTIONS, EMOJI);
    $("room-record").addEventListener("change", setRecording);
    $("room-close").addEventListener("click", () => socket.emit("close", {}, () => say("The room is closed.")));
    $("room-copy").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText($("room-link").value));
  } else {
    $("room-join").addEventListener("submit", (event) => {
      event.preventDefault();
      name = $("room-name").value.trim();
      if (socket.connected) rejoin();
    });
    $("room-share").addEventListener("click", startSharing);
    $("room-pause").addEventListener("click", () => setShare(false));
    $("room-leave").addEventListener("click", leave);
    $("room-agree").addEventListener("click", () => consent(true));
    $("room-refuse").addEventListener("click", () => consent(false));
    // Leaving the page releases the camera; the server shows the tile as away until the reconnect grace ends.
    window.addEventListener("pagehide", stopCamera);
  }
})();
