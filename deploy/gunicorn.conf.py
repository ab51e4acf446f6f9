"""gunicorn settings of one web process: ``gunicorn -c deploy/gunicorn.conf.py -b 0.0.0.0:8000 'webapp:create_app()'``.

Supported shapes (anything else is refused at start-up):
- ``-k eventlet -w 1`` (the default here; gunicorn 25, since 26 removed the eventlet worker);
- ``-k gthread -w 1 --threads 64`` with simple-websocket installed, for gunicorn versions without eventlet.
One worker per process because a Socket.IO connection must keep talking to the process that holds it; run
several processes behind a balancer with sticky sessions and EMO_SOCKETIO_MESSAGE_QUEUE instead.
"""

import os

worker_class = "eventlet"
workers = 1
threads = 64  # gthread only: each WebSocket holds a thread for its whole life
# SIGTERM: stop accepting, then give in-flight requests this long; open WebSockets are closed after it and
# their clients reconnect (through the balancer, to another process).
graceful_timeout = 10
accesslog = "-"
if os.environ.get("EMO_LOG_JSON", "").lower() in ("1", "true", "yes", "on"):
    access_log_format = ('{"time": "%(t)s", "remote": "%(h)s", "request": "%(r)s", "status": %(s)s, '
                         '"bytes": "%(b)s", "ms": %(M)s, "agent": "%(a)s"}')

SUPPORTED = ("eventlet", "gthread")


def on_starting(server):
    """Refuse shapes that break Socket.IO: more than one worker per process, or a worker class not tested."""
    name = server.cfg.worker_class_str
    if server.cfg.workers != 1:
        raise SystemExit(f"use -w 1 (got {server.cfg.workers}): Socket.IO connections cannot move between "
                         "workers of one process; run more processes behind a sticky balancer instead")
    if name not in SUPPORTED:
        raise SystemExit(f"use -k eventlet or -k gthread (got {name})")
