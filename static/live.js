// Live page: camera -> small JPEG -> Socket.IO "frame" (binary) -> boxes, emoji, bars and a 60 s chart.
"use strict";

(() => {
  const root = document.getElementById("live");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const EMOTIONS = root.dataset.emotions.split(",");
  const EMOJI = JSON.parse(root.dataset.emoji);
  // The server's per-connection budget; staying under it means the visitor never sees "rate_limited".
  const MIN_INTERVAL_MS = 1000 / Number(root.dataset.maxFps || 30);
  const SEND_WIDTH = 480;  // small frames: faster upload and decode, still enough pixels for a face
  const JPEG_QUALITY = 0.7;
  const ACK_TIMEOUT_MS = 10000;  // an answer lost to a reconnect must not stall the loop forever
  const SMOOTHING = 0.3;  // weight of the newest frame in the moving average
  const HISTORY_MS = 60000;
  const COLORS = ["#c0392b", "#6b8e23", "#8e44ad", "#e0a100", "#1a5fb4", "#d35400", "#56606b"];

  const video = $("live-video"), overlay = $("live-overlay"), frozenImg = $("live-frozen");
  const capture = document.createElement("canvas");
  let stream = null, socket = null, running = false, frozen = null;
  let lastAnswered = null;  // {buffer, answer}: what "that's wrong" freezes
  const smoothed = new Map();  // track id -> smoothed probabilities
  let history = [];  // {t, values} of the largest face
  let answerTimes = [], lastSentAt = 0, lastTop = "";

  function say(message) { $("live-status").textContent = message; }
  function fail(message) { $("live-error").textContent = message; }

  async function start() {
    fail("");
    if (!navigator.mediaDevices || !window.io) {
      fail("This browser cannot stream the camera here (it needs HTTPS or localhost, and the page scripts).");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
    } catch (error) {
      fail(`The camera could not be opened (${error.name}). Allow it in the address bar and try again.`);
      return;
    }
    video.srcObject = stream;
    await video.play();
    // WebSocket only: long-polling would send every binary frame as a separate HTTP request.
    socket = io("/live", {transports: ["websocket"], reconnectionDelayMax: 5000});
    socket.on("connect", () => { say("Connected: analysing your camera."); scheduleFrame(); });
    socket.on("disconnect", () => say("Disconnected; reconnecting…"));
    socket.on("connect_error", () => fail("The live service cannot be reached; retrying…"));
    socket.on("error", (body) => fail(body && body.message ? body.message : "The server refused a frame."));
    running = true;
    $("live-start").disabled = true;
    $("live-stop").disabled = false;
    $("live-stop").focus();
  }

  function stop() {
    running = false;
    if (stream) stream.getTracks().forEach((track) => track.stop());  // the camera light goes off
    stream = null;
    video.srcObject = null;
    if (socket) socket.disconnect();
    socket = null;
    endFreeze();
    overlay.replaceChildren();
    $("live-start").disabled = false;
    $("live-stop").disabled = true;
    $("live-wrong").disabled = true;
    say("Camera stopped.");
  }

  function scheduleFrame() {
    // Paced by acknowledgement: called once per answer, so at most one frame is ever in flight.
    if (!running || frozen) return;
    const wait = Math.max(0, lastSentAt + MIN_INTERVAL_MS - performance.now());
    setTimeout(sendFrame, wait);
  }

  function sendFrame() {
    if (!running || frozen || !socket || !socket.connected || !video.videoWidth) {
      if (running && !frozen) setTimeout(sendFrame, 100);
      return;
    }
    capture.width = SEND_WIDTH;
    capture.height = Math.round(SEND_WIDTH * video.videoHeight / video.videoWidth);
    capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
    capture.toBlob(async (blob) => {
      if (!blob || !socket) { scheduleFrame(); return; }
      const buffer = await blob.arrayBuffer();
      const sentAt = lastSentAt = performance.now();
      socket.timeout(ACK_TIMEOUT_MS).emit("frame", buffer, (timedOut, answer) => {
        // An answer landing after a freeze must not replace the faces being corrected.
        if (!timedOut && answer && !answer.error && !answer.dropped && !frozen) onAnswer(answer, buffer, sentAt);
        scheduleFrame();
      });
    }, "image/jpeg", JPEG_QUALITY);
  }

  function onAnswer(answer, buffer, sentAt) {
    const now = performance.now();
    answerTimes = answerTimes.filter((t) => now - t < 1000).concat(now);
    $("live-fps").textContent = answerTimes.length.toFixed(0);
    $("live-rtt").textContent = (now - sentAt).toFixed(0);
    fail("");
    lastAnswered = {buffer, answer};
    const faces = answer.faces.map((face) => ({...face, shown: smooth(face)}));
    const alive = new Set(faces.map((face) => face.track));
    for (const track of smoothed.keys()) if (!alive.has(track)) smoothed.delete(track);
    drawBoxes(faces, answer.width, answer.height);
    drawBars(faces);
    record(faces, now);
    drawChart(now);
    $("live-wrong").disabled = faces.length === 0;
  }

  function smooth(face) {
    // An exponential moving average per tracked face steadies the bars between frames.
    const raw = EMOTIONS.map((label) => face.emotions[label]);
    if (!$("live-smooth").checked) { smoothed.set(face.track, raw); return raw; }
    const previous = smoothed.get(face.track);
    const values = previous ? raw.map((p, i) => SMOOTHING * p + (1 - SMOOTHING) * previous[i]) : raw;
    smoothed.set(face.track, values);
    return values;
  }

  const topOf = (values) => EMOTIONS[values.indexOf(Math.max(...values))];
  const percent = (value, total) => `${(100 * value / total).toFixed(3)}%`;

  function drawBoxes(faces, width, height) {
    // Percentages of the frame size, so the overlay follows the video at any displayed size.
    overlay.replaceChildren(...faces.map((face) => {
      const box = document.createElement("div");
      box.className = "box live-box";
      Object.assign(box.style, {left: percent(face.box.x, width), top: percent(face.box.y, height),
                                width: percent(face.box.w, width), height: percent(face.box.h, height)});
      const emoji = document.createElement("span");
      emoji.className = "live-emoji";
      emoji.textContent = EMOJI[topOf(face.shown)];
      box.append(emoji);
      return box;
    }));
  }

  function drawBars(faces) {
    const list = $("live-face-list");
    $("live-no-face").hidden = faces.length > 0;
    // Rows are kept per track, so bars glide instead of being rebuilt every frame.
    const rows = new Map([...list.children].map((item) => [Number(item.dataset.track), item]));
    list.replaceChildren(...faces.map((face, position) => {
      const item = rows.get(face.track) || newFaceRow(face.track);
      const top = topOf(face.shown);
      item.querySelector("h3").textContent = `Face ${position + 1} `;
      item.querySelector(".emoji").textContent = EMOJI[top];
      face.shown.forEach((value, i) => {
        const bar = item.querySelectorAll(".bar")[i];
        bar.classList.toggle("top", EMOTIONS[i] === top);
        bar.querySelector(".bar-fill").style.width = `${(100 * value).toFixed(1)}%`;
        bar.querySelector(".bar-value").textContent = `${Math.round(100 * value)}%`;
        bar.querySelector(".bar-track").setAttribute("aria-valuenow", Math.round(100 * value));
      });
      return item;
    }));
    const largest = largestFace(faces);
    const top = largest ? topOf(largest.shown) : "";
    // Announce only changes of the main expression; per-frame numbers would flood a screen reader.
    if (top !== lastTop) $("live-summary").textContent = top ? `Largest face looks ${top}` : "No face";
    lastTop = top;
  }

  function newFaceRow(track) {
    const item = document.createElement("li");
    item.className = "face live-face";
    item.dataset.track = track;
    const heading = document.createElement("h3");
    const emoji = document.createElement("span");
    emoji.className = "emoji";
    emoji.setAttribute("aria-hidden", "true");
    const bars = document.createElement("ul");
    bars.className = "bars";
    for (const label of EMOTIONS) {
      const bar = document.createElement("li");
      bar.className = "bar";
      bar.innerHTML = '<span class="bar-label"></span><span class="bar-track" role="meter" aria-valuemin="0" ' +
                      'aria-valuemax="100"><span class="bar-fill"></span></span><span class="bar-value"></span>';
      bar.querySelector(".bar-label").textContent = label;
      bar.querySelector(".bar-track").setAttribute("aria-label", label);
      bars.append(bar);
    }
    item.append(heading, emoji, bars);
    return item;
  }

  const largestFace = (faces) => faces.reduce((best, face) =>
    (!best || face.box.w * face.box.h > best.box.w * best.box.h ? face : best), null);

  function record(faces, now) {
    const largest = largestFace(faces);
    if (largest) history.push({t: now, values: largest.shown});
    history = history.filter((point) => now - point.t <= HISTORY_MS);
  }

  function drawChart(now) {
    const canvas = $("live-chart"), ctx = canvas.getContext("2d");
    const {width, height} = canvas;
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#d5dbe1";
    ctx.lineWidth = 1;
    for (const level of [0, 0.5, 1]) {
      const y = height - level * (height - 1);
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke();
    }
    ctx.lineWidth = 2;
    EMOTIONS.forEach((_, i) => {
      ctx.strokeStyle = COLORS[i % COLORS.length];
      ctx.beginPath();
      history.forEach((point, n) => {
        const x = width - (now - point.t) / HISTORY_MS * width;
        const y = height - point.values[i] * (height - 2) - 1;
        if (n === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  }

  function drawLegend() {
    $("live-legend").replaceChildren(...EMOTIONS.map((label, i) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "live-swatch";
      swatch.style.background = COLORS[i % COLORS.length];
      item.append(swatch, `${EMOJI[label]} ${label}`);
      return item;
    }));
  }

  function freeze() {
    // Stop sending and show the exact frame the faces belong to, so the visitor corrects what they saw.
    if (!lastAnswered || !lastAnswered.answer.faces.length) return;
    frozen = lastAnswered;
    frozenImg.src = URL.createObjectURL(new Blob([frozen.buffer], {type: "image/jpeg"}));
    frozenImg.hidden = false;
    const fields = $("live-correct-faces");
    fields.replaceChildren(...frozen.answer.faces.map((face, position) => {
      const fieldset = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = `Face ${position + 1} (shown as ${face.top} ${face.emoji})`;
      const choices = document.createElement("div");
      choices.className = "choices";
      for (const label of EMOTIONS) {
        const id = `live-choice-${face.index}-${label}`;
        const input = Object.assign(document.createElement("input"),
                                    {type: "radio", name: `face-${face.index}`, value: label, id});
        const text = Object.assign(document.createElement("label"), {htmlFor: id,
                                                                   textContent: `${EMOJI[label]} ${label}`});
        choices.append(input, text);
      }
      fieldset.append(legend, choices);
      return fieldset;
    }));
    $("live-correct-status").textContent = "";
    $("live-correct").hidden = false;
    $("live-correct-heading").focus();
  }

  function endFreeze() {
    if (frozenImg.src) URL.revokeObjectURL(frozenImg.src);
    frozenImg.removeAttribute("src");
    frozenImg.hidden = true;
    $("live-correct").hidden = true;
    const wasFrozen = frozen !== null;
    frozen = null;
    if (wasFrozen && running) { scheduleFrame(); $("live-wrong").focus(); }
  }

  function sendCorrection(event) {
    event.preventDefault();
    const faces = frozen.answer.faces.map((face) => {
      const chosen = document.querySelector(`input[name="face-${face.index}"]:checked`);
      return chosen ? {index: face.index, emotion: chosen.value} : null;
    }).filter(Boolean);
    if (!faces.length) { $("live-correct-status").textContent = "Choose an emotion for at least one face."; return; }
    if (!socket) { $("live-correct-status").textContent = "Start the camera again to send corrections."; return; }
    // The server kept this frame's answer by its number, so the correction stores exactly what was shown.
    const payload = {seq: frozen.answer.seq, faces, consent_crop: $("live-consent").checked};
    socket.timeout(ACK_TIMEOUT_MS).emit("correction", payload, (timedOut, answer) => {
      const status = $("live-correct-status");
      if (timedOut || !answer || answer.error) {
        status.textContent = (answer && answer.message) || "The correction could not be sent; try again.";
        return;
      }
      status.textContent = "Thank you! Your correction was saved.";
      setTimeout(endFreeze, 1200);
    });
  }

  $("live-start").addEventListener("click", start);
  $("live-stop").addEventListener("click", stop);
  $("live-wrong").addEventListener("click", freeze);
  $("live-correct").addEventListener("submit", sendCorrection);
  $("live-correct-cancel").addEventListener("click", endFreeze);
  $("live-correct").addEventListener("keydown", (event) => { if (event.key === "Escape") endFreeze(); });
  $("live-smooth").addEventListener("change", () => smoothed.clear());
  // Leaving the page releases the camera and closes the stream (also when the page goes to the bfcache).
  window.addEventListener("pagehide", () => { if (running) stop(); });
  drawLegend();
})();
