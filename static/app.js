// Emotion Lens page script: progressive enhancement over the plain HTML forms (they work without it).
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector, root = document) => root.querySelector(selector);

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

async function showResults(analysisId, photoUrl) {
  // The results block is rendered by the server (same template as the permalink page).
  const response = await fetch(`/a/${encodeURIComponent(analysisId)}/results`);
  if (!response.ok) throw new Error("the results could not be loaded");
  const results = $("#results");
  results.innerHTML = await response.text();
  const img = $(".local-photo", results);
  if (img && photoUrl) {
    img.src = photoUrl;
    img.hidden = false;
    const note = $(".no-photo", results);
    if (note) note.hidden = true;
  }
  $("#results-heading", results).focus();
}

async function analyse(formData, photoUrl) {
  const button = $("#analyse-button");
  button.disabled = true;
  say("Analysing\u2026");
  try {
    const result = await apiCall("/api/v1/predict", {method: "POST", body: formData});
    await showResults(result.id, photoUrl || result.annotated_image);
    say(result.faces.length ? `Found ${result.faces.length} face(s).` : "No face found.");
  } catch (error) {
    say(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function setUpUpload() {
  const form = $("#upload-form");
  if (!form) return;
  const fileInput = $("#image", form), dropZone = $("#drop-zone");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const file = fileInput.files[0];
    if (file) {
      data.delete("image_url");
      analyse(data, URL.createObjectURL(file));
    } else if ($("#image_url", form).value.trim()) {
      data.delete("image");
      data.set("annotate", "true");  // the browser cannot read another site's image, so ask for a drawn copy
      analyse(data, null);
    } else {
      say("Choose a photo, paste an image URL or take a snapshot first.", true);
    }
  });
  fileInput.addEventListener("change", () => { if (fileInput.files.length) form.requestSubmit(); });
  ["dragenter", "dragover"].forEach((type) => dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => dropZone.addEventListener(type, () => dropZone.classList.remove("dragging")));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (!event.dataTransfer.files.length) return;
    fileInput.files = event.dataTransfer.files;
    form.requestSubmit();
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
    canvas.toBlob((blob) => {
      const data = new FormData();
      data.set("image", blob, "snapshot.jpg");
      data.set("source", "camera");
      if ($("#keep_photo", form).checked) data.set("keep_photo", "true");
      analyse(data, URL.createObjectURL(blob));
    }, "image/jpeg", 0.92);
  });
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
      const thanks = $(".thanks", form);
      const consent = $('input[name="consent_crop"]', form);
      try {
        const stored = await apiCall("/api/v1/feedback", {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({analysis_id: analysisId, face_index: Number(form.dataset.faceIndex),
                                emotion: event.submitter.value, consent_crop: Boolean(consent && consent.checked)}),
        });
        thanks.textContent = `Thank you! Recorded as ${stored.emotion}` +
          (stored.crop_stored ? ", with the face crop." : ".");
      } catch (error) {
        thanks.textContent = error.message;
      }
    } else if (form.classList.contains("delete")) {
      try {
        await apiCall(`/api/v1/analyses/${encodeURIComponent(analysisId)}`, {method: "DELETE"});
        block.innerHTML = '<p role="status">Deleted. Nothing about this analysis is stored any more.</p>';
      } catch (error) {
        say(error.message, true);
      }
    }
  });
}

setUpUpload();
setUpResults();
