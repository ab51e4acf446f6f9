// Video page: upload a clip to /api/v1/videos, poll its status URL, draw each face track's emotions over time.
"use strict";

(() => {
  const root = document.getElementById("video");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const EMOTIONS = root.dataset.emotions.split(",");
  const EMOJI = JSON.parse(root.dataset.emoji);
  const COLORS = window.EmotionColors;
  const POLL_MS = 1000;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let jobId = root.dataset.job || null, timer = null;

  const say = (message) => { $("video-status").textContent = message; };
  const fail = (message) => { $("video-error").textContent = message; };
  const statusUrl = (id) => `${root.dataset.api}/${encodeURIComponent(id)}`;

  async function upload(event) {
    event.preventDefault();
    fail("");
    const file = $("video-file").files[0];
    if (!file) { fail("Choose a video file first."); return; }
    const form = new FormData();
    form.append("video", file);
    form.append("fps", $("video-fps").value);
    say("Uploading…");
    const response = await fetch(root.dataset.api, {method: "POST", body: form, headers: {"X-CSRFToken": csrf}});
    const body = await response.json().catch(() => ({}));
    if (response.status !== 202) { say(""); fail(body.message || "The video could not be uploaded."); return; }
    jobId = body.id;
    // The job id goes into the address, so a reload (or a bookmark) comes back to this analysis.
    history.replaceState(null, "", body.page_url);
    $("video-form").hidden = true;
    poll();
  }

  async function poll() {
    clearTimeout(timer);
    const response = await fetch(statusUrl(jobId), {headers: {Accept: "application/json"}});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { say(""); fail(body.message || "This analysis is not available any more."); return; }
    const bar = $("video-progress");
    // A clip whose container does not give its length (browser-recorded WebM) has no share to show: the bar
    // goes indeterminate and the status counts the seconds read instead.
    if (body.progress === null) bar.removeAttribute("value");
    else bar.value = Math.round(100 * (body.progress || 0));
    if (body.status === "queued" || body.status === "running") {
      $("video-progress-wrap").hidden = false;
      const done = body.progress === null ? `${Math.round(body.seconds_analysed || 0)} s of video read`
        : `${Math.round(100 * (body.progress || 0))}%`;
      say(body.status === "queued" ? "Waiting for its turn…" : `Analysing… ${done}`);
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    $("video-progress-wrap").hidden = true;
    if (body.status === "done") { say("Done."); show(body.result); }
    else if (body.status === "cancelled") say("The analysis was cancelled.");
    else fail((body.error && body.error.message) || "The video could not be analysed.");
  }

  async function remove() {
    clearTimeout(timer);
    await fetch(statusUrl(jobId), {method: "DELETE", headers: {"X-CSRFToken": csrf}});
    say("Removed.");
    $("video-result").hidden = true;
    $("video-progress-wrap").hidden = true;
    history.replaceState(null, "", root.dataset.page);
    $("video-form").hidden = false;
  }

  function show(result) {
    $("video-result").hidden = false;
    $("video-summary").textContent = `${result.tracks.length} face track(s) in ${result.duration.toFixed(1)} s, ` +
      `${result.frames} frames analysed`;
    $("video-csv").href = `${statusUrl(jobId)}?format=csv`;
    $("video-json").href = statusUrl(jobId);
    $("video-tracks").replaceChildren(...result.tracks.map((track) => trackItem(track, result.duration)));
    window.drawEmotionLegend($("video-legend"), EMOTIONS, EMOJI);
  }

  function trackItem(track, duration) {
    const item = document.createElement("li");
    item.className = "face video-track";
    item.dataset.track = track.id;
    const heading = document.createElement("h3");
    heading.textContent = `Face ${track.id}: mostly ${track.dominant} `;
    const emoji = Object.assign(document.createElement("span"), {className: "emoji", textContent: EMOJI[track.dominant]});
    emoji.setAttribute("aria-hidden", "true");
    heading.append(emoji);
    const canvas = Object.assign(document.createElement("canvas"), {width: 720, height: 160});
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `Emotion scores of face ${track.id} over ${duration.toFixed(1)} seconds; ` +
                        `seen in ${track.samples.length} frames, mostly ${track.dominant}`);
    const axis = document.createElement("p");
    axis.className = "video-axis";
    axis.setAttribute("aria-hidden", "true");
    axis.append(Object.assign(document.createElement("span"), {textContent: "0 s"}),
                Object.assign(document.createElement("span"), {textContent: `${duration.toFixed(1)} s`}));
    item.append(heading, canvas, axis);
    draw(canvas, track.samples, Math.max(duration, 0.001));
    return item;
  }

  function draw(canvas, samples, duration) {
    const ctx = canvas.getContext("2d"), {width, height} = canvas;
    ctx.strokeStyle = "#d5dbe1";
    for (const level of [0, 0.5, 1]) {
      const y = height - level * (height - 1);
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke();
    }
    ctx.lineWidth = 2;
    EMOTIONS.forEach((label, i) => {
      ctx.strokeStyle = COLORS[i];
      ctx.beginPath();
      samples.forEach((sample, n) => {
        const x = sample.t / duration * (width - 1), y = height - sample.emotions[label] * (height - 2) - 1;
        if (n === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  }

  $("video-form").addEventListener("submit", (event) => upload(event).catch(() => fail("The upload failed.")));
  $("video-cancel").addEventListener("click", remove);
  $("video-delete").addEventListener("click", remove);
  if (jobId) poll().catch(() => fail("The analysis could not be loaded."));
})();
