// Shared by the room and video pages: the colour of each emotion in their charts, and the legend that names it.
"use strict";

window.EmotionColors = ["#c0392b", "#6b8e23", "#8e44ad", "#e0a100", "#1a5fb4", "#d35400", "#56606b"];

window.drawEmotionLegend = (list, emotions, emoji) => {
  list.replaceChildren(...emotions.map((label, i) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "emotion-swatch";
    swatch.style.background = window.EmotionColors[i % window.EmotionColors.length];
    item.append(swatch, `${emoji[label]} ${label}`);
    return item;
  }));
};
