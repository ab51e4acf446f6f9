// Shared by the live and room pages: one webcam frame as the small JPEG the server expects.
"use strict";

(() => {
  const SEND_WIDTH = 480;  // small frames: faster upload and decode, still enough pixels for a face
  const JPEG_QUALITY = 0.7;
  const canvas = document.createElement("canvas");

  // Resolves to the frame's JPEG bytes (an ArrayBuffer), or null when the browser made no image.
  window.captureCameraFrame = (video) => new Promise((resolve) => {
    canvas.width = SEND_WIDTH;
    canvas.height = Math.round(SEND_WIDTH * video.videoHeight / video.videoWidth);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => resolve(blob ? blob.arrayBuffer() : null), "image/jpeg", JPEG_QUALITY);
  });
})();
