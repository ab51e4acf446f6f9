"""``python -m model_server.serve --redis redis://HOST:PORT/DB``: a model worker that takes jobs from Redis.

Any number of workers on any number of hosts share one job stream through a consumer group; every web
process feeds it (``model_server.remote``). A worker loads the model once, reads up to ``--batch`` jobs at a
time, runs them on ``--threads`` threads through the engine (whose batcher classifies the crops of concurrent
jobs in one model call), LPUSHes each answer to the reply key its caller BLPOPs, and acknowledges the job.

Jobs carry their deadline: an expired job is answered "busy" without being analysed, and jobs left pending
by a crashed worker are claimed (XAUTOCLAIM) by another, which answers them only while their deadline allows.
On SIGTERM the worker withdraws its heartbeat, stops reading, finishes the jobs it holds, and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import redis

from .api import Predictor, load_predictor
from .errors import AnalysisError, ModelBusyError
from .logs import use_json_logs
from .remote import QueueKeys, connect, live_workers, split_queue
from .wire import WireError, decode_request, encode_result

log = logging.getLogger("model_server.serve")
ENGINE = "model_server.serving.engine:create_engine"
# A heartbeat refreshed every second with a 3 s TTL: one missed beat (a GC pause, a slow Redis) is tolerated,
# and a dead worker disappears from the clients' view within 3 s.
HEARTBEAT_EVERY_S = 1.0
HEARTBEAT_TTL_S = 3
# XREADGROUP returns as soon as a job arrives; the block only bounds how long a stop request waits.
READ_BLOCK_MS = 100
# How often pending jobs of dead workers are looked for, and dead workers' names tidied.
CLAIM_EVERY_S = 0.25
TIDY_EVERY_S = 5.0
# An answer nobody picks up (the caller gave up) disappears after this long.
REPLY_TTL_S = 30


class Worker:
    """Reads jobs from the stream, answers each through the predictor, keeps a heartbeat; stop() ends it."""

    def __init__(self, client: redis.Redis, predictor: Predictor, name: str, keys: QueueKeys = QueueKeys(),
                 batch: int = 8, threads: int = 4, claim_idle_ms: int = 1500,
                 description: dict[str, Any] | None = None) -> None:
        self.redis, self.predictor, self.name, self.keys = client, predictor, name, keys
        self.batch, self.claim_idle_ms = batch, claim_idle_ms
        self.description = {"name": name, "host": socket.gethostname(), "pid": os.getpid(), "batch": batch,
                            "threads": threads, "model": predictor.info.as_dict(), **(description or {})}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="job")
        # Jobs held (read but not yet answered) never exceed ``batch``: a worker takes no more than it can start
        # soon, so the others get the rest.
        self._slots = threading.BoundedSemaphore(batch)
        self._stop = threading.Event()
        self._claim_cursor = "0-0"
        self._held: set[bytes] = set()  # ids of the jobs in this worker's hands, which it must not claim again
        self._held_lock = threading.Lock()
        self.answered = 0

    def stop(self) -> None:
        """Ask the worker to stop reading; run() returns after the held jobs are answered."""
        self._stop.set()

    def run(self) -> None:
        """Serve until stop(): heartbeat, read and claim jobs, answer them; survives Redis outages."""
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        next_claim = next_tidy = 0.0
        try:
            while not self._stop.is_set():
                try:
                    self._ensure_group()
                    while not self._stop.is_set():
                        now = time.monotonic()
                        if now >= next_claim:
                            self._take(self._claim())
                            next_claim = now + CLAIM_EVERY_S
                        if now >= next_tidy:
                            self._tidy()
                            next_tidy = now + TIDY_EVERY_S
                        self._take(self._read())
                except redis.ResponseError as error:
                    if "NOGROUP" not in str(error):  # Redis restarted empty: recreate the group, else report
                        raise
                except (redis.ConnectionError, redis.TimeoutError):
                    log.warning("Redis unreachable; retrying in 1 s", exc_info=True)
                    self._stop.wait(1.0)
        finally:
            self._stop.set()
            beat.join()
            self._withdraw()
            self._pool.shutdown(wait=True)  # the jobs already held are answered before exit

    def _free(self) -> int:
        """How many more jobs this worker may hold now (reserving their slots), waiting briefly for one."""
        if not self._slots.acquire(timeout=READ_BLOCK_MS / 1000):
            return 0
        free = 1
        while free < self.batch and self._slots.acquire(blocking=False):
            free += 1
        return free

    def _read(self) -> list[tuple[bytes, dict]]:
        """Up to the free slots' worth of new jobs (empty after a short block when there are none)."""
        free = self._free()
        if not free:
            return []
        try:
            answer = self.redis.xreadgroup(self.keys.group, self.name, {self.keys.stream: ">"}, count=free,
                                           block=READ_BLOCK_MS)
        except BaseException:
            self._release(free)
            raise
        entries = answer[0][1] if answer else []
        self._release(free - len(entries))
        return entries

    def _claim(self) -> list[tuple[bytes, dict]]:
        """Jobs another worker left pending longer than claim_idle_ms (it crashed or hangs), now ours."""
        free = self._free()
        if not free:
            return []
        try:
            cursor, entries, *_deleted = self.redis.xautoclaim(
                self.keys.stream, self.keys.group, self.name, min_idle_time=self.claim_idle_ms,
                start_id=self._claim_cursor, count=free)
        except BaseException:
            self._release(free)
            raise
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
        # Entries trimmed from the stream (MAXLEN) come back without fields; only their acknowledgement is left.
        stale = [entry_id for entry_id, fields in entries if not fields]
        if stale:
            self.redis.xack(self.keys.stream, self.keys.group, *stale)
        with self._held_lock:
            # A slow job of our own looks idle too; it is already being answered.
            entries = [(entry_id, fields) for entry_id, fields in entries if fields and entry_id not in self._held]
        if entries:
            log.info("claimed %d job(s) left pending by another worker", len(entries))
        self._release(free - len(entries))
        return entries

    def _take(self, entries: list[tuple[bytes, dict]]) -> None:
        """Start answering jobs whose slots are already reserved."""
        for entry_id, fields in entries:
            with self._held_lock:
                self._held.add(entry_id)
            self._pool.submit(self._answer, entry_id, fields)

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _answer(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Analyse one job (unless its deadline passed), push the answer or its error, acknowledge it."""
        try:
            reply = fields.get(b"reply")
            result = self._result(fields)
            pipe = self.redis.pipeline(transaction=False)
            if reply:
                pipe.lpush(reply, encode_result(result))
                pipe.expire(reply, REPLY_TTL_S)
            # Answered jobs leave the stream too, so MAXLEN only ever counts the waiting backlog.
            pipe.xack(self.keys.stream, self.keys.group, entry_id)
            pipe.xdel(self.keys.stream, entry_id)
            pipe.execute()
            self.answered += 1
        except redis.RedisError:
            # The job stays pending; another worker (or this one) claims it again while its deadline allows.
            log.warning("could not answer job %s", entry_id, exc_info=True)
        finally:
            with self._held_lock:
                self._held.discard(entry_id)
            self._slots.release()

    def _result(self, fields: dict[bytes, bytes]) -> Any:
        """The job's ImageAnalysis, or the AnalysisError that answers it instead."""
        try:
            if time.time() > float(fields[b"deadline"]):
                return ModelBusyError("the request waited past its deadline; try again")
            return self.predictor.analyze(decode_request(fields[b"body"]))
        except AnalysisError as error:
            return error
        except (WireError, KeyError, ValueError):
            log.warning("refused a malformed job", exc_info=True)
            return AnalysisError("the request could not be read by the model worker")
        except Exception:  # noqa: BLE001 - one bad job must not end the worker; its caller gets a generic error
            log.exception("analysis failed")
            return AnalysisError("the model failed on this image")

    def _ensure_group(self) -> None:
        """Create the stream and its consumer group unless they exist (the first worker, or Redis restarted)."""
        try:
            # From "0": jobs queued before any worker started are still served while their deadlines allow.
            self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _heartbeat_loop(self) -> None:
        """Publish this worker's description with a short TTL every second until stopped."""
        value = json.dumps(self.description, default=float)  # numpy figures in a model card, too
        while not self._stop.is_set():
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(self.keys.heartbeat(self.name), value, ex=HEARTBEAT_TTL_S)
                pipe.sadd(self.keys.workers, self.name)
                pipe.execute()
            except redis.RedisError:
                log.warning("heartbeat failed", exc_info=True)
            self._stop.wait(HEARTBEAT_EVERY_S)

    def _withdraw(self) -> None:
        """Remove the heartbeat at once, so callers stop sending work here instead of waiting for its TTL."""
        try:
            self.redis.delete(self.keys.heartbeat(self.name))
            self.redis.srem(self.keys.workers, self.name)
        except redis.RedisError:
            log.warning("could not withdraw the heartbeat", exc_info=True)

    def _tidy(self) -> None:
        """Forget dead workers: their names leave the worker set, and consumers with nothing pending the group."""
        alive = live_workers(self.redis, self.keys)
        for raw in self.redis.smembers(self.keys.workers):
            if raw.decode() not in alive:
                self.redis.srem(self.keys.workers, raw)
        for consumer in self.redis.xinfo_consumers(self.keys.stream, self.keys.group):
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            # DELCONSUMER drops the consumer's pending jobs, so only empty ones idle for a minute are removed.
            if name not in alive and name != self.name and consumer["pending"] == 0 and consumer["idle"] > 60_000:
                self.redis.xgroup_delconsumer(self.keys.stream, self.keys.group, name)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The worker's command line."""
    parser = argparse.ArgumentParser(prog="python -m model_server.serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--redis", required=True,
                        help="redis://HOST:PORT/DB[?queue=NAME], the same URL as the web app's EMO_MODEL_URL")
    parser.add_argument("--queue", default="emo", help="key prefix of the job stream (a ?queue= in the URL wins)")
    parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}",
                        help="this worker's name in the consumer group (unique per worker)")
    parser.add_argument("--batch", type=int, default=8, help="jobs read and held at once")
    parser.add_argument("--threads", type=int, default=4,
                        help="jobs decoded and searched for faces at once; their crops share model calls")
    parser.add_argument("--wait-ms", type=float, default=2.0,
                        help="how long a model call waits for more crops after the first (dynamic batching)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (CUDA when present)")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch/OpenCV threads per call; 0: one per core")
    parser.add_argument("--claim-idle-ms", type=int, default=1500,
                        help="a job pending this long at another worker is taken over (that worker died)")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped model)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other ServingConfig field, e.g. --set live_tta=none (repeatable)")
    parser.add_argument("--predictor", default=ENGINE, help="'module:factory' of the predictor (tests use a fake)")
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    return parser.parse_args(argv)


def serving_settings(args: argparse.Namespace) -> dict[str, Any]:
    """ServingConfig fields from the command line (``--set`` wins over the named flags)."""
    settings: dict[str, Any] = {"device": args.device, "batch_wait_ms": args.wait_ms, "threads": args.torch_threads,
                                # every crop of the jobs held at once fits one model call
                                "batch_max": max(32, args.batch * 4)}
    if args.checkpoint:
        settings["checkpoint"] = args.checkpoint
    for item in args.set:
        field, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"--set expects FIELD=VALUE, not {item!r}")
        settings[field.strip()] = value
    return settings


def resolved_device(requested: str) -> str:
    """The device "auto" picked (CUDA when present); a fake predictor that never imported torch keeps the name."""
    if requested != "auto" or "torch" not in sys.modules:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model, serve jobs until SIGTERM or SIGINT, then finish the held jobs and exit."""
    args = parse_args(argv)
    if args.log_json:
        use_json_logs()
    else:
        logging.basicConfig(level=logging.INFO)
    predictor = load_predictor(args.predictor, **serving_settings(args))
    url, queue = split_queue(args.redis, args.queue)
    client = connect(url, socket_timeout=10.0)
    worker = Worker(client, predictor, args.consumer, QueueKeys(queue), batch=args.batch,
                    threads=args.threads, claim_idle_ms=args.claim_idle_ms,
                    description={"device": resolved_device(args.device)})
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    info, where = predictor.info, client.connection_pool.connection_kwargs  # no password in the banner
    print(f"model_server.serve: {info.name} {info.version} on {worker.description['device']} for queue {queue!r} at "
          f"redis {where.get('host')}:{where.get('port')}/{where.get('db')} as {args.consumer}; "
          f"batch {args.batch}, threads {args.threads}", flush=True)
    try:
        worker.run()
    finally:
        predictor.close()
        client.close()
    print(f"model_server.serve: {args.consumer} stopped after {worker.answered} job(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
