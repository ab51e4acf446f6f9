"""The deployment of compose.yaml from local processes on this machine, for the tests and the benchmark.

    .venv/bin/python deploy/topology.py                 # 2 model workers (real model), 2 gunicorn web processes
    .venv/bin/python deploy/topology.py --fake          # the test predictor instead of the model (no torch)

It uses the machine's Redis (127.0.0.1:6379, a database of its own and a key prefix per run) and PostgreSQL
(127.0.0.1:5432, database ``test``, a throwaway schema per run), starts ``python -m model_server.serve``
workers and ``gunicorn -k eventlet -w 1`` web processes on free ports, and a small TCP balancer in front of
them that, like nginx, skips a dead backend. Ctrl-C stops everything and drops the schema and the keys.
"""

from __future__ import annotations

import argparse
import getpass
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REDIS_BASE = os.environ.get("EMO_TOPOLOGY_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = 14  # the machine's Redis is shared: the topology keeps to one database and one key prefix per run
POSTGRES_URL = os.environ.get("EMO_TOPOLOGY_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FAKE_PREDICTOR = "topology_helpers:create_paced_predictor"  # tests/; torch-free
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
NGINX_SITE = REPO / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def services_missing() -> str | None:
    """None when Redis and PostgreSQL answer, else what is missing (tests skip with this reason)."""
    import redis
    from sqlalchemy import create_engine, text

    try:
        redis.Redis.from_url(f"{REDIS_BASE}/{REDIS_DB}", socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return f"needs Redis at {REDIS_BASE} ({error})"
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means "not available here"
        return f"needs PostgreSQL at {POSTGRES_URL} ({type(error).__name__})"
    return None


class Balancer:
    """A TCP balancer: each connection goes to the next backend that accepts it (a dead one is skipped).

    A WebSocket is one TCP connection, so it stays on its process, which is all the stickiness a
    WebSocket-only Socket.IO client needs; nginx's ip_hash does the same for polling clients too.
    """

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._next = itertools.count()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        first = next(self._next)
        for offset in range(len(self.backends)):
            try:
                backend = socket.create_connection(self.backends[(first + offset) % len(self.backends)], timeout=1)
            except OSError:
                continue
            backend.settimeout(None)
            threading.Thread(target=self._pump, args=(backend, client), daemon=True).start()
            self._pump(client, backend)
            return
        client.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def close(self) -> None:
        """Stop accepting connections."""
        self._server.close()


def nginx_config(workdir: Path, ports: list[int], listen: int) -> Path:
    """deploy/nginx.conf pointed at local web processes, inside a minimal main config that writes to ``workdir``."""
    site = NGINX_SITE.read_text()
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in ports)
    site = re.sub(r"(?m)^\s*server web\d+:\d+[^\n]*\n", "", site).replace("ip_hash;\n", "ip_hash;\n" + servers)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    temp = "\n".join(f"    {kind}_temp_path {workdir}/nginx-{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    path = workdir / "nginx.conf"
    # Workers run as this user, so they can use temp folders inside a private workdir (as root: "user root").
    path.write_text(f"daemon off;\nuser {getpass.getuser()};\npid {workdir}/nginx.pid;\nerror_log {workdir}/nginx-error.log;\nevents {{}}\n"
                    f"http {{\n    access_log {workdir}/nginx-access.log;\n{temp}\n{site}\n}}\n")
    return path


class Topology:
    """Model workers, gunicorn web processes and a balancer on Redis and PostgreSQL; a context manager."""

    def __init__(self, workdir: Path, workers: int = 2, web: int = 2, predictor: str | None = None,
                 worker_args: tuple[str, ...] = (), web_env: dict[str, str] | None = None,
                 gunicorn_args: tuple[str, ...] = ()) -> None:
        self.workdir, self.predictor, self.worker_args = Path(workdir), predictor, list(worker_args)
        self.gunicorn_args = list(gunicorn_args)  # e.g. ("-k", "gthread") for the threaded web tier
        self.run_id = uuid.uuid4().hex[:10]
        self.queue, self.schema = f"topo-{self.run_id}", f"emo_topo_{self.run_id}"
        self.redis_url = f"{REDIS_BASE}/{REDIS_DB}"
        self.worker_names = [f"worker{index + 1}" for index in range(workers)]
        self.ports = [free_port() for _ in range(web)]
        self.workers: dict[str, subprocess.Popen] = {}
        self.web: dict[int, subprocess.Popen] = {}
        self.web_env = web_env or {}
        self.balancer: Balancer | None = None
        self.nginx: subprocess.Popen | None = None
        self.nginx_port = 0

    @property
    def urls(self) -> list[str]:
        """The web processes' own URLs (a client that must reach one process in particular)."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def balanced_url(self) -> str:
        """The balancer's URL (what visitors would reach through nginx)."""
        return f"http://127.0.0.1:{self.balancer.port}"

    def start_nginx(self) -> str:
        """Put nginx with deploy/nginx.conf in front of the web processes; returns its URL."""
        self.nginx_port = free_port()
        config = nginx_config(self.workdir, self.ports, self.nginx_port)
        self.nginx = self._spawn([NGINX, "-c", str(config)], "nginx")
        url = f"http://127.0.0.1:{self.nginx_port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.log_tail('nginx')}{self.log_tail('nginx-error')}")
            try:
                socket.create_connection(("127.0.0.1", self.nginx_port), timeout=1).close()
                return url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start listening")

    def env(self) -> dict[str, str]:
        """What every process of this topology shares: Redis, PostgreSQL, key, media folder, queue."""
        return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
                    DATABASE_URL=POSTGRES_URL, EMO_DATABASE_SCHEMA=self.schema,
                    EMO_MODEL_URL=f"{self.redis_url}?queue={self.queue}",
                    EMO_SOCKETIO_MESSAGE_QUEUE=self.redis_url, EMO_SOCKETIO_CHANNEL=f"{self.queue}-socketio",
                    EMO_RATELIMIT_STORAGE_URI=self.redis_url, EMO_CROP_CACHE_URL=self.redis_url,
                    EMO_ROOM_STORE_URL=self.redis_url, EMO_ROOM_STORE_PREFIX=f"{self.queue}:rooms:",
                    EMO_VIDEO_STORE_URL=self.redis_url, EMO_VIDEO_STORE_PREFIX=f"{self.queue}:videos:",
                    # Shared, as a deployment shares them: signed sessions and kept files work on every process.
                    EMO_SECRET_KEY=f"topology-{self.run_id}-{'k' * 32}", EMO_MEDIA_DIR=str(self.workdir / "media"),
                    **self.web_env)

    def __enter__(self) -> "Topology":
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self) -> None:
        """Schema, workers, then web processes one after another (each migrates the schema at start-up)."""
        self._schema(f'CREATE SCHEMA "{self.schema}"')
        for name in self.worker_names:
            self.start_worker(name)
        for index in range(len(self.ports)):
            self.start_web(index)
            self.wait_ready(index)
        self.balancer = Balancer([("127.0.0.1", port) for port in self.ports])

    def start_worker(self, name: str) -> subprocess.Popen:
        """Start (or restart) one model worker."""
        command = [sys.executable, "-m", "model_server.serve", "--redis", f"{self.redis_url}?queue={self.queue}",
                   "--consumer", name, *(["--predictor", self.predictor] if self.predictor else []),
                   *self.worker_args]
        self.workers[name] = self._spawn(command, name)
        return self.workers[name]

    def start_web(self, index: int) -> subprocess.Popen:
        """Start (or restart) web process ``index`` on its port."""
        command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "-b", f"127.0.0.1:{self.ports[index]}",
                   *self.gunicorn_args, "webapp:create_app()"]
        self.web[index] = self._spawn(command, f"web{index + 1}")
        return self.web[index]

    def wait_ready(self, index: int, timeout_s: float = 120.0) -> None:
        """Wait for web process ``index`` to answer /readyz with 200 (database migrated, a worker alive)."""
        import requests

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.web[index].poll() is not None:
                raise RuntimeError(f"web{index + 1} exited:\n{self.log_tail(f'web{index + 1}')}")
            try:
                if requests.get(f"{self.urls[index]}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"web{index + 1} not ready in {timeout_s} s:\n{self.log_tail(f'web{index + 1}')}")

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen:
        """Start a process in a session of its own, so a signal reaches its children too (gunicorn's worker)."""
        return subprocess.Popen(command, cwd=REPO, env=self.env(), stdout=self._log(name), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def signal(self, process: subprocess.Popen, signum: int = signal.SIGKILL, wait_s: float = 15.0) -> None:
        """Signal one of our processes with all its children (a host or container going down) and wait for it."""
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        process.wait(timeout=wait_s)

    def log_tail(self, name: str, chars: int = 4000) -> str:
        """The end of a process's output."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _log(self, name: str):
        return open(self.workdir / f"{name}.log", "a")

    def stop(self) -> None:
        """SIGTERM every process (SIGKILL after 15 s), then drop the schema and the run's Redis keys."""
        if self.balancer:
            self.balancer.close()
        processes = [*([self.nginx] if self.nginx else []), *self.web.values(), *self.workers.values()]
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)  # gone already: its group may still hold children
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._schema(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        import redis

        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=f"{self.queue}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    def _schema(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_URL)
        with engine.begin() as connection:
            connection.execute(text(statement))
        engine.dispose()

    def query(self, statement: str) -> list[tuple]:
        """Rows of a SQL statement in this topology's schema (tests check what was stored)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={self.schema}"})
        with engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(text(statement))]
        engine.dispose()
        return rows


def main(argv: list[str] | None = None) -> int:
    """Start the topology, print where it serves, and run until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", action="store_true", help="the test predictor instead of the real model")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--web", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="logs and media (default: a temporary folder)")
    args = parser.parse_args(argv)
    import tempfile

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emo-topology-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Topology(workdir, args.workers, args.web, FAKE_PREDICTOR if args.fake else None) as topology:
        print(f"web: {' '.join(topology.urls)}; balanced: {topology.balanced_url}; logs: {workdir}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
