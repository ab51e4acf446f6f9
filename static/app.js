// Emotion Lens page script: progressive enhancement over the plain HTML forms (they work without it).
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

function say(message, isError = false) {
  // Status and errors live in aria-live regions so screen readers hear them.
  const status = $("#status"), error = $("#error");
  if (status) status.textContent = isError ? "" : message;
  if (error) error.textContent = isError ? message : "";
}

async function apiCall(url, options = {}) {
  // Same-origin calls carry the session cookie, so the CSRF token must come with them.
  const response = await fetch(url, {...options, headers: {"X-CSRFToken": csrfToken(), ...(options.headers || {})}});
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.message) || `request failed (HTTP ${response.status})`);
  return body;
}

// ---- Labels, thumbnails and face highlighting on a results block --------------------------------------------

const overlap = (a, b) => Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) *
                          Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));

function placeLabels(photo) {
  // Each number goes next to its box, sized with the box, on the first side where it covers no face and no
  // label placed before it; inside the box's corner only when every side is taken.
  const width = photo.clientWidth, height = photo.clientHeight;
  if (!width) return;
  // Fractional rectangles: offsetLeft and friends round to whole pixels, which let a label overlap a face
  // by a fraction of a pixel at phone scale.
  const origin = photo.getBoundingClientRect();
  const rect = (el) => {
    const r = el.getBoundingClientRect();
    return {x: r.left - origin.left - photo.clientLeft, y: r.top - origin.top - photo.clientTop, w: r.width, h: r.height};
  };
  const boxes = new Map($$(".box", photo).map((el) => [el.dataset.number, rect(el)]));
  const placed = [];
  for (const label of $$(".box-label", photo)) {
    const box = boxes.get(label.dataset.number);
    label.style.fontSize = `${Math.max(10, Math.min(16, box.w * 0.3)).toFixed(1)}px`;
    Object.assign(label.style, {bottom: "auto", left: "0px", top: "0px"});
    const {w, h} = rect(label);
    const gap = 1;  // a pixel of air between a label and the face it names
    const sides = [[box.x, box.y - h - gap], [box.x + box.w - w, box.y - h - gap], [box.x, box.y + box.h + gap],
                   [box.x + box.w - w, box.y + box.h + gap], [box.x - w - gap, box.y], [box.x + box.w + gap, box.y],
                   [box.x, box.y]];
    let best = null;
    for (const [x0, y0] of sides) {
      // Kept inside the photo's width (a label must never widen the page) and within a label's height of it.
      const spot = {x: Math.min(Math.max(x0, 0), width - w), y: Math.min(Math.max(y0, -h), height), w, h};
      const cost = 10 * placed.reduce((sum, other) => sum + overlap(spot, other), 0) +
                   [...boxes.values()].reduce((sum, other) => sum + overlap(spot, other), 0);
      if (!best || cost < best.cost) best = {...spot, cost};
      if (cost === 0) break;
    }
    placed.push(best);
    Object.assign(label.style, {left: `${best.x}px`, top: `${best.y}px`});
  }
}

function drawThumbnails(block) {
  // Cropped in the browser from the visitor's own picture: nothing more is stored or sent.
  const img = $(".result-photo", block), photo = $(".photo", block);
  if (!img || img.hidden || !img.complete || !img.naturalWidth) return;
  const scale = img.naturalWidth / Number(photo.dataset.width);
  for (const canvas of $$("canvas.thumb", block)) {
    const [x, y, w, h] = ["x", "y", "w", "h"].map((key) => Number(canvas.dataset[key]) * scale);
    const side = Math.max(w, h) * 1.15;
    canvas.getContext("2d").drawImage(img, x + w / 2 - side / 2, y + h / 2 - side / 2, side, side,
                                      0, 0, canvas.width, canvas.height);
  }
}

function highlight(block, number, on) {
  $$(`.box[data-number="${number}"], .box-label[data-number="${number}"]`, block)
    .forEach((el) => el.classList.toggle("active", on));
}

function enhanceResults(block, photoUrl) {
  const img = $(".local-photo", block);
  if (img && photoUrl) {
    img.src = photoUrl;
    img.hidden = false;
    const note = $(".no-photo", block);
    if (note) note.hidden = true;
  }
  const photo = $(".photo", block), shown = $(".result-photo", block);
  if (shown) shown.addEventListener("load", () => drawThumbnails(block));
  drawThumbnails(block);
  if (photo) {
    placeLabels(photo);
    new ResizeObserver(() => placeLabels(photo)).observe(photo);
  }
  for (const face of $$(".face", block)) {
    const details = $("details", face), number = face.dataset.number;
    if (details) details.addEventListener("toggle", () => highlight(block, number, details.open));
    face.addEventListener("mouseenter", () => highlight(block, number, true));
    face.addEventListener("mouseleave", () => highlight(block, number, details ? details.open : false));
  }
}

// ---- Upload -------------------------------------------------------------------------------------------------

async function showResults(analysisId, photoUrl) {
  // The results block is rendered by the server (same template as the permalink page).
  const response = await fetch(`/a/${encodeURIComponent(analysisId)}/results`);
  if (!response.ok) throw new Error("the results could not be loaded");
  const results = $("#results");
  results.innerHTML = await response.text();
  enhanceResults($(".analysis", results), photoUrl);
  // Photo and scores in view: the results start at the top of the screen, and focus moves there too.
  const heading = $("#results-heading", results);
  heading.scrollIntoView({block: "start"});
  heading.focus({preventScroll: true});
}

async function analyse(formData, photoUrl) {
  const button = $("#analyse-button");
  button.disabled = true;
  say("Analysing\u2026");
  try {
    const result = await apiCall("/api/v1/predict", {method: "POST", body: formData});
    await showResults(result.id, photoUrl || result.image);
    const found = result.faces.length ? `Found ${result.faces.length} face${result.faces.length > 1 ? "s" : ""}.`
                                      : "No face found.";
    say(result.notice ? `${found} ${result.notice}.` : found);
    if (!result.faces.length && !formData.has("face_only")) offerWholePicture(formData, photoUrl);
  } catch (error) {
    $("#results").replaceChildren();  // an old result under a new error would look like the new answer
    say(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function offerWholePicture(formData, photoUrl) {
  // A face cropped close leaves the detector no room around it: offer to read the same picture whole,
  // without choosing it again (the form data still holds the file or the URL).
  const advice = $("#results .no-face");
  if (!advice) return;
  const button = document.createElement("button");
  button.type = "button";
  button.id = "read-whole";
  button.textContent = "Read the whole picture as one face";
  button.addEventListener("click", () => {
    const again = new FormData();
    for (const [key, value] of formData) again.append(key, value);
    again.set("face_only", "true");
    analyse(again, photoUrl);
  });
  advice.append(button);
}

function setUpUpload() {
  const form = $("#upload-form");
  if (!form) return;
  const fileInput = $("#image", form), dropZone = $("#drop-zone");
  const chosen = () => {
    // Choosing does not send: "keep my photo" can still be ticked before pressing Analyse.
    const file = fileInput.files[0];
    $("#chosen").textContent = file ? `Chosen: ${file.name}. Press \u201cAnalyse\u201d when ready.` : "";
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const file = fileInput.files[0];
    if (file) {
      data.delete("image_url");
      analyse(data, URL.createObjectURL(file));
    } else if ($("#image_url", form).value.trim()) {
      data.delete("image");
      // The browser cannot read another site's image, so ask for the clean upright copy the server decoded
      // (the page draws its own numbered boxes on it).
      data.set("image", "true");
      analyse(data, null);
    } else {
      $("#results").replaceChildren();
      say("Choose a photo, paste an image URL or take a snapshot first.", true);
    }
  });
  fileInput.addEventListener("change", chosen);
  ["dragenter", "dragover"].forEach((type) => dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => dropZone.addEventListener(type, () => dropZone.classList.remove("dragging")));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (!event.dataTransfer.files.length) return;
    fileInput.files = event.dataTransfer.files;
    chosen();
    $("#analyse-button").focus();
  });
  setUpCamera(form);
}

function setUpCamera(form) {
  const camera = $("#camera");
  if (!camera || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
  camera.hidden = false;
  const video = $("#camera-video"), start = $("#camera-start"), snap = $("#camera-snap");
  start.addEventListener("click", async () => {
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({video: {facingMode: "user"}, audio: false});
      await video.play();
      video.hidden = snap.hidden = false;
      start.hidden = true;
      snap.focus();
    } catch (error) {
      say(`The camera could not be opened (${error.message}).`, true);
    }
  });
  snap.addEventListener("click", () => {
    // One still frame: drawn to a canvas, sent as JPEG, then the camera is switched off.
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    video.srcObject.getTracks().forEach((track) => track.stop());
    video.hidden = snap.hidden = true;
    start.hidden = false;
    start.focus();
    canvas.toBlob((blob) => {
      const data = new FormData();
      data.set("image", blob, "snapshot.jpg");
      data.set("source", "camera");
      if ($("#keep_photo", form).checked) data.set("keep_photo", "true");
      analyse(data, URL.createObjectURL(blob));
    }, "image/jpeg", 0.92);
  });
}

// ---- Answers about faces and deletion -----------------------------------------------------------------------

function showAnswer(form, answer) {
  // One answer per face: the chosen button is pressed, the others not; withdrawing clears them all.
  for (const button of $$("button[data-emotion]", form)) {
    const isConfirm = button.classList.contains("confirm");
    const pressed = Boolean(answer) && (isConfirm ? answer.kind === "confirmation"
                                                  : answer.kind === "correction" && answer.emotion === button.value);
    button.setAttribute("aria-pressed", String(pressed));
  }
  $(".withdraw", form).hidden = !answer;
}

async function sendAnswer(form, submitter, analysisId) {
  const thanks = $(".thanks", form), faceIndex = Number(form.dataset.faceIndex);
  const consent = $('input[name="consent_crop"]', form);
  try {
    if (submitter.classList.contains("withdraw")) {
      await apiCall(`/api/v1/analyses/${encodeURIComponent(analysisId)}/faces/${faceIndex}/feedback`,
                    {method: "DELETE"});
      showAnswer(form, null);
      thanks.textContent = "Your answer was withdrawn.";
      $("button.confirm", form).focus();  // the withdraw button just disappeared
      return;
    }
    const confirming = submitter.classList.contains("confirm");
    const stored = await apiCall("/api/v1/feedback", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({analysis_id: analysisId, face_index: faceIndex,
                            kind: confirming ? "confirmation" : "correction",
                            emotion: submitter.dataset.emotion, consent_crop: Boolean(consent && consent.checked)}),
    });
    showAnswer(form, stored);
    const what = stored.kind === "confirmation" ? "it\u2019s right" : stored.emotion;
    thanks.textContent = `Thank you! Your answer: ${what}` + (stored.crop_stored ? ", with the face crop." : ".");
  } catch (error) {
    thanks.textContent = error.message;
  }
}

function setUpResults() {
  // Delegated, so it also covers results inserted after an upload.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    const block = form.closest(".analysis");
    if (!block) return;
    event.preventDefault();
    const analysisId = block.dataset.analysisId;
    if (form.classList.contains("feedback")) {
      await sendAnswer(form, event.submitter, analysisId);
    } else if (form.classList.contains("delete")) {
      try {
        await apiCall(`/api/v1/analyses/${encodeURIComponent(analysisId)}`, {method: "DELETE"});
        const done = Object.assign(document.createElement("p"), {className: "deleted", tabIndex: -1,
          textContent: "Deleted. Nothing about this analysis is stored any more. "});
        done.append(Object.assign(document.createElement("a"), {href: "/", textContent: "Analyse another photo"}));
        block.replaceWith(done);
        done.focus();  // the button the visitor pressed is gone; the news of what happened takes its place
      } catch (error) {
        say(error.message, true);
      }
    }
  });
}

setUpUpload();
setUpResults();
// The permalink page renders its results with the page.
$$(".analysis").forEach((block) => enhanceResults(block, null));
