"""The responsible-use page, and the npm browser libraries the pages load (served from node_modules, never a CDN)."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory

from model_server.labels import EMOJI, EMOTIONS

from . import inference
from .errors import ServiceUnavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
# `python -m model_server.evaluate --json --out docs/evaluation` writes the shipped model's full evaluation here.
EVALUATION_REPORT = REPO_ROOT / "docs" / "evaluation" / "report.json"
NODE_MODULES = REPO_ROOT / "node_modules"
# The only files served from node_modules: name in the URL -> path in the npm package (`npm ci` installs them).
VENDOR_FILES = {"uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js", "uPlot.min.css": "uplot/dist/uPlot.min.css"}

bp = Blueprint("about", __name__)


def model_figures() -> dict:
    """What the page says about the model: the serving model's card figures and, when it is the model that was
    evaluated, the per-class figures of docs/evaluation/report.json."""
    try:
        info = inference.get_predictor().info
    except ServiceUnavailable:
        # The page is about limits and privacy too; it stays readable while the model is down.
        return {"name": "(model not loaded)", "version": "unknown", "metrics": {}, "per_class": None}
    figures = {"name": info.name, "version": info.version, "metrics": dict(info.metrics), "per_class": None}
    try:
        report = json.loads(EVALUATION_REPORT.read_text())
    except (OSError, ValueError):
        return figures
    if report.get("model_version") == info.version:
        # Figures of another model would be wrong here, so they are shown only for the model that answers.
        figures.update(per_class=report.get("per_class"), split=report.get("split"), n=report.get("n"),
                       accuracy=report.get("accuracy"), macro_f1=report.get("macro_f1"))
    return figures


@bp.get("/responsible-use")
def responsible_use():
    """What the model reads and what not, how accurate it is, where it fails, what is stored and for how long."""
    config = current_app.config
    return render_template("responsible_use.html", model=model_figures(), emotions=EMOTIONS, emoji=EMOJI,
                           crop_minutes=config["IMAGE_CACHE_SECONDS"] // 60)


@bp.get("/vendor/lib/<name>")
def vendor(name: str):
    """A browser library from node_modules, same origin (the Content-Security-Policy allows nothing else)."""
    relative = VENDOR_FILES.get(name)
    if relative is None or not (NODE_MODULES / relative).is_file():
        abort(404, description=f"{name} is not installed; run `npm ci` in the repository root")
    mimetype = "text/css" if name.endswith(".css") else "text/javascript"
    return send_from_directory(NODE_MODULES, relative, mimetype=mimetype, max_age=86400)
