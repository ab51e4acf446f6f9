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
  const MAX_IN_FLIGHT = 2;  // frames sent and not yet answered
  const ACK_TIMEOUT_MS = 10000;  // an answer lost to a reconnect must not stall the loop forever
  const SMOOTHING = 0.3;  // weight of the newest frame in the moving average
  const HISTORY_S = 60;
  const PAUSE_S = 1.5;  // longer without an answer (stopped, frozen, reconnecting) draws a gap, not a line
  // Okabe-Ito colours (told apart with every common colour-vision deficiency), plus dashes for a second cue.
  const COLORS = ["#D55E00", "#009E73", "#CC79A7", "#E69F00", "#0072B2", "#56B4E9", "#000000"];
  const DASHES = [[], [6, 3], [2, 3], [], [10, 4], [6, 3, 2, 3], [1, 2]];
  const CLOCK = {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false};

  const video = $("live-video"), overlay = $("live-overlay"), frozenImg = $("live-frozen");
  let stream = null, socket = null, running = false, frozen = null;
  let lastAnswered = null;  // {buffer, answer}: what "that's wrong" freezes
  const smoothed = new Map();  // track id -> smoothed probabilities
  let history = [];  // {t: seconds, values: percentages or null when no face} of the largest face
  let chart = null;  // the uPlot chart, made once the library has loaded
  let answerTimes = [], lastSentAt = 0, lastTop = "";
  let inFlight = 0, pending = 0, lastSeq = -1;  // frames awaiting an answer, frames about to be sent

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
    // Frame numbers start again on a new connection.
    socket.on("connect", () => { lastSeq = -1; say("Connected: analysing your camera."); scheduleFrame(); });
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
    // Nothing on screen may look like a current reading once the camera is off.
    overlay.replaceChildren();
    $("live-face-list").replaceChildren();
    smoothed.clear();
    $("live-no-face").hidden = false;
    $("live-no-face").textContent = "The camera is off.";
    $("live-fps").textContent = "0";
    $("live-rtt").textContent = "\u2013";
    $("live-summary").textContent = "";
    lastTop = "";
    lastAnswered = null;
    $("live-start").disabled = false;
    $("live-stop").disabled = true;
    $("live-wrong").disabled = true;
    $("live-start").focus();  // the Stop button just became disabled; Start is where a visitor goes next
    say("Camera stopped.");
  }

  function scheduleFrame() {
    // Paced by acknowledgement with a window of MAX_IN_FLIGHT frames: the next frame travels while the
    // server works on the previous one, so the frame rate is not capped by the round trip. The server still
    // analyses only the newest waiting frame per client.
    if (!running || frozen || inFlight + pending >= MAX_IN_FLIGHT) return;
    pending += 1;
    const wait = Math.max(0, lastSentAt + MIN_INTERVAL_MS - performance.now());
    setTimeout(() => { pending -= 1; sendFrame(); }, wait);
  }

  function sendFrame() {
    if (!running || frozen || !socket || !socket.connected || !video.videoWidth) {
      if (running && !frozen) setTimeout(scheduleFrame, 100);
      return;
    }
    window.captureCameraFrame(video).then((buffer) => {
      if (!buffer || !socket) { scheduleFrame(); return; }
      const sentAt = lastSentAt = performance.now();
      inFlight += 1;
      socket.timeout(ACK_TIMEOUT_MS).emit("frame", buffer, (timedOut, answer) => {
        inFlight -= 1;
        // An answer landing after a freeze must not replace the faces being corrected, and an answer older
        // than the one on screen (possible with two frames in flight) is skipped.
        const fresh = answer && !answer.error && !answer.dropped && answer.seq > lastSeq;
        if (!timedOut && fresh && !frozen) { lastSeq = answer.seq; onAnswer(answer, buffer, sentAt); }
        scheduleFrame();
      });
      scheduleFrame();  // fill the window
    });
  }

  function onAnswer(answer, buffer, sentAt) {
    const now = performance.now();
    answerTimes = answerTimes.filter((t) => now - t < 1000).concat(now);
    $("live-fps").textContent = answerTimes.length.toFixed(0);
    $("live-rtt").textContent = (now - sentAt).toFixed(0);
    fail("");
    lastAnswered = {buffer, answer};
    // Numbered in reading order when the server says so; boxes and list use the same number either way.
    const faces = answer.faces.map((face) => ({...face, number: face.number || face.index + 1, shown: smooth(face)}))
      .sort((a, b) => a.number - b.number);
    const alive = new Set(faces.map((face) => face.track));
    for (const track of smoothed.keys()) if (!alive.has(track)) smoothed.delete(track);
    drawBoxes(faces, answer.width, answer.height);
    drawBars(faces);
    record(faces);
    drawChart();
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
      const label = document.createElement("span");
      label.className = "live-label";
      const number = Object.assign(document.createElement("span"), {className: "live-number",
                                                                   textContent: String(face.number)});
      const emoji = Object.assign(document.createElement("span"), {className: "live-emoji emoji",
                                                                  textContent: EMOJI[topOf(face.shown)]});
      label.append(number, emoji);
      box.append(label);
      return box;
    }));
  }

  function drawBars(faces) {
    const list = $("live-face-list");
    $("live-no-face").hidden = faces.length > 0;
    // Rows are kept per track, so bars glide instead of being rebuilt every frame.
    const rows = new Map([...list.children].map((item) => [Number(item.dataset.track), item]));
    list.replaceChildren(...faces.map((face) => {
      const item = rows.get(face.track) || newFaceRow(face.track);
      const top = topOf(face.shown);
      item.querySelector("h3").textContent = `Face ${face.number} `;
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

  function record(faces) {
    // Seconds since the epoch, as uPlot's time axis expects; a pause leaves a null point, so the line breaks.
    const now = Date.now() / 1000;
    const last = history[history.length - 1];
    if (last && last.values && now - last.t > PAUSE_S) history.push({t: last.t + PAUSE_S / 2, values: null});
    const largest = largestFace(faces);
    history.push({t: now, values: largest ? largest.shown.map((p) => 100 * p) : null});
    history = history.filter((point) => now - point.t <= HISTORY_S);
  }

  function makeChart() {
    // uPlot (npm, served from node_modules): a time axis, a 0-100 % axis and a legend with the values.
    const element = $("live-chart");
    if (!window.uPlot || !element) return null;
    const percentOrDash = (u, value) => (value == null ? "\u2013" : `${Math.round(value)}%`);
    const options = {
      width: Math.max(280, element.clientWidth), height: 240,
      scales: {x: {time: true, range: () => timeWindow()}, y: {auto: false, range: [0, 100]}},
      series: [{label: "Time"}, ...EMOTIONS.map((label, i) => ({
        label, stroke: COLORS[i % COLORS.length], width: 2, dash: DASHES[i % DASHES.length],
        spanGaps: false, points: {show: false}, value: percentOrDash}))],
      axes: [{label: "Time", labelSize: 20, space: 60,
              values: (u, ticks) => ticks.map((tick) => new Date(tick * 1000).toLocaleTimeString([], CLOCK))},
             {label: "Score", labelSize: 20, size: 50, splits: () => [0, 25, 50, 75, 100],
              values: (u, ticks) => ticks.map((tick) => `${tick}%`)}],
      cursor: {drag: {x: false, y: false}},
    };
    const plot = new uPlot(options, chartData(), element);
    element.uplot = plot;  // reachable from devtools and the browser test (axis ticks, scales)
    return plot;
  }

  function timeWindow() {
    // Sixty seconds wide from the first point on, then sliding: the line grows left to right, not at the edge.
    const last = history.length ? history[history.length - 1].t : Date.now() / 1000;
    const start = history.length ? Math.max(history[0].t, last - HISTORY_S) : last - HISTORY_S;
    return [start, start + HISTORY_S];
  }

  const chartData = () => [history.map((point) => point.t),
    ...EMOTIONS.map((_, i) => history.map((point) => (point.values ? point.values[i] : null)))];

  function drawChart() {
    chart = chart || makeChart();
    if (!chart) return;
    chart.setData(chartData());
    // Without a pointer over the chart the legend reads the newest scores (with one, the scores under it).
    if (chart.cursor.left < 0 && history.length) chart.setLegend({idx: history.length - 1});
  }

  function freeze() {
    // Stop sending and show the exact frame the faces belong to, so the visitor corrects what they saw.
    if (!lastAnswered || !lastAnswered.answer.faces.length) return;
    frozen = lastAnswered;
    frozenImg.src = URL.createObjectURL(new Blob([frozen.buffer], {type: "image/jpeg"}));
    frozenImg.hidden = false;
    root.classList.add("frozen");
    const numbered = frozen.answer.faces.map((face) => ({...face, number: face.number || face.index + 1}))
      .sort((a, b) => a.number - b.number);
    $("live-correct-faces").replaceChildren(...numbered.map((face) => {
      const fieldset = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = `Face ${face.number}: shown as ${face.top}`;
      const choices = document.createElement("div");
      choices.className = "choices";
      // The predicted emotion is offered as "it's right" (stored as a confirmation), the others as corrections.
      for (const label of [face.top, ...EMOTIONS.filter((other) => other !== face.top)]) {
        const id = `live-choice-${face.index}-${label}`;
        const input = Object.assign(document.createElement("input"),
                                    {type: "radio", name: `face-${face.index}`, value: label, id});
        const text = Object.assign(document.createElement("label"), {htmlFor: id});
        const emoji = Object.assign(document.createElement("span"), {className: "emoji", textContent: EMOJI[label]});
        emoji.setAttribute("aria-hidden", "true");
        text.append(emoji, label === face.top ? ` it\u2019s right (${label})` : ` ${label}`);
        choices.append(Object.assign(document.createElement("span"), {className: "choice"}));
        choices.lastChild.append(input, text);
      }
      fieldset.append(legend, choices);
      return fieldset;
    }));
    $("live-correct-status").textContent = "";
    $("live-correct").hidden = false;
    // The frozen frame and its form together: the stage at the top of the screen, the form beside or below it.
    $("live-stage").scrollIntoView({block: "start"});
    $("live-correct-heading").focus({preventScroll: true});
  }

  function endFreeze() {
    if (frozenImg.src) URL.revokeObjectURL(frozenImg.src);
    frozenImg.removeAttribute("src");
    frozenImg.hidden = true;
    $("live-correct").hidden = true;
    root.classList.remove("frozen");
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
    if (!faces.length) { $("live-correct-status").textContent = "Choose an answer for at least one face."; return; }
    if (!socket) { $("live-correct-status").textContent = "Start the camera again to send corrections."; return; }
    // The server kept this frame's answer by its number, so the correction stores exactly what was shown.
    const payload = {seq: frozen.answer.seq, faces, consent_crop: $("live-consent").checked};
    socket.timeout(ACK_TIMEOUT_MS).emit("correction", payload, (timedOut, answer) => {
      const status = $("live-correct-status");
      if (timedOut || !answer || answer.error) {
        status.textContent = (answer && answer.message) || "The correction could not be sent; try again.";
        return;
      }
      status.textContent = "Thank you! Your answer was saved.";
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
  window.addEventListener("resize", () => {
    if (chart) chart.setSize({width: Math.max(280, $("live-chart").clientWidth), height: 240});
  });
  drawChart();  // axes and legend from the start, before the first face
})();
