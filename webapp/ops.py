"""Operations endpoints on every web process: liveness (/livez) and readiness (/readyz) for the load balancer.

/livez answers without touching anything, so a restart is only triggered by a process that cannot answer at
all; /readyz checks what a request needs (a model that can answer now, the database), so a balancer sends
visitors elsewhere while the model workers are down or the database is unreachable.
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from . import inference
from .db import ping
from .extensions import limiter

bp = Blueprint("ops", __name__)


@bp.get("/livez")
@limiter.exempt
def livez():
    """The process serves requests: always 200 (probes must stay cheap)."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """The model can answer now and the database is reachable: 200, else 503 with what is missing."""
    model_ok, database_ok = inference.model_ready(), ping()
    ready = model_ok and database_ok
    return jsonify(status="ok" if ready else "unavailable", model=model_ok, database=database_ok), \
        200 if ready else 503


def init_ops(app: Flask) -> None:
    """Register the probes, and switch the logs to one JSON object per line when LOG_JSON is set."""
    app.register_blueprint(bp)
    if app.config["LOG_JSON"]:
        from flask.logging import default_handler

        from model_server.logs import use_json_logs

        # Flask's own handler would print every app log line a second time, unformatted.
        app.logger.removeHandler(default_handler)
        use_json_logs()
