"""Live webcam load on a real server: N simulated cameras send ack-paced 640x480 JPEGs of a face to /live.

    .venv/bin/python benchmarks/bench_live.py                          # real model, 1/4/16 clients, 120 s soak
    .venv/bin/python benchmarks/bench_live.py --fake --seconds 3 --soak 5   # the test predictor (web stack only)

``--target embedded,topology`` runs the same sweep against deploy/topology.py (model workers behind Redis,
gunicorn eventlet web processes on PostgreSQL) first, then the embedded server, and prints what the remote hop
adds at N=1. ``--window 1,2`` compares strictly ack-paced clients with two frames in flight (as the live page sends).
The server runs as the README runs it (``python -m webapp``, eventlet) in a subprocess. Prints per N the
frames answered per second per client and the round-trip p50/p95, then the server's RSS during a soak.
Targets on a 2-core CPU: N=1 at least 15 frames/s with p95 under 80 ms; N=4 at least 8 frames/s per client.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import socketio
from PIL import Image

from bench_upload import FAKE_SPEC, REPO, free_port, start_server, wait_healthy

MAX_FPS = 30  # the browser's own pace (the server's LIVE_MAX_FPS); clients never send faster


def face_frame_jpeg() -> bytes:
    """scikit-image's astronaut (one face) placed in a 640x480 frame, as the browser would send it."""
    from skimage.data import astronaut

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[40:440, 120:520] = np.asarray(Image.fromarray(astronaut()).resize((400, 400), Image.BILINEAR))
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


class Camera(threading.Thread):
    """One simulated webcam: connects, then keeps at most ``window`` frames unanswered (1: strictly ack-paced)."""

    def __init__(self, url: str, frame: bytes, start: threading.Barrier, stop: threading.Event,
                 window: int = 1) -> None:
        super().__init__(daemon=True)
        self.url, self.frame, self.start_barrier, self.stop_event = url, frame, start, stop
        self.window = window
        self.rtts_ms: list[float] = []
        self.stages: list[dict[str, float]] = []  # the server's per-stage timings plus the measured round trip
        self.errors: dict[str, int] = {}
        self.faces: set[int] = set()
        self._lock = threading.Lock()

    def _answered(self, sent: float, slots: threading.Semaphore, answer: dict) -> None:
        """Record one answer and free its slot in the window."""
        elapsed_ms = (time.perf_counter() - sent) * 1000
        with self._lock:
            if "faces" in answer:
                self.rtts_ms.append(elapsed_ms)
                self.faces.add(len(answer["faces"]))
                self.stages.append({**answer.get("timings_ms", {}), "round_trip": elapsed_ms,
                                    "followed": answer.get("search") == "follow"})
            else:
                code = answer.get("error", "dropped")
                self.errors[code] = self.errors.get(code, 0) + 1
        slots.release()

    def run(self) -> None:
        """Connect, wait for the others, stream until stopped (never faster than the browser's own pace)."""
        client = socketio.Client()
        client.connect(self.url, namespaces=["/live"], transports=["websocket"])
        slots = threading.Semaphore(self.window)
        try:
            self.start_barrier.wait()
            while not self.stop_event.is_set():
                if not slots.acquire(timeout=1):
                    continue
                sent = time.perf_counter()
                client.emit("frame", self.frame, namespace="/live",
                            callback=lambda answer, sent=sent: self._answered(sent, slots, answer))
                time.sleep(max(0.0, 1 / MAX_FPS - (time.perf_counter() - sent)))
            for _ in range(self.window):  # let the last answers land before disconnecting
                slots.acquire(timeout=5)
        finally:
            client.disconnect()


def run_clients(url: str | list[str], frame: bytes, count: int, seconds: float, window: int = 1) -> list[Camera]:
    """Stream from ``count`` cameras at once for ``seconds``; returns the finished cameras.

    Several URLs (the topology's web processes) take the cameras in turn, as a sticky balancer spreads visitors.
    """
    urls = [url] if isinstance(url, str) else url
    start, stop = threading.Barrier(count + 1), threading.Event()
    cameras = [Camera(urls[index % len(urls)], frame, start, stop, window) for index in range(count)]
    for camera in cameras:
        camera.start()
    start.wait(timeout=60)
    time.sleep(seconds)
    stop.set()
    for camera in cameras:
        camera.join(timeout=120)
    return cameras


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def stage_report(cameras: list[Camera]) -> str:
    """Median milliseconds per stage of a frame: model-tier stages, the server's hops, and the network."""
    stages = [stage for camera in cameras for stage in camera.stages]
    if not stages:
        return ""
    median = {key: statistics.median(float(s.get(key, 0.0)) for s in stages)
              for key in ("decode", "detect", "classify", "total", "server", "round_trip")}
    followed = sum(bool(s.get("followed")) for s in stages) / len(stages)
    return (f"      stages (median ms): decode {median['decode']:.1f}  detect {median['detect']:.1f}  "
            f"classify {median['classify']:.1f}  model total {median['total']:.1f}  "
            f"queue+thread hops {median['server'] - median['total']:.1f}  "
            f"socket.io+network {median['round_trip'] - median['server']:.1f}  "
            f"frames followed {followed:.0%}")


def report(count: int, seconds: float, cameras: list[Camera]) -> None:
    """One line per client count: frames/s per client, round trip p50/p95, errors; then the stage split."""
    per_client = [len(camera.rtts_ms) / seconds for camera in cameras]
    rtts = [rtt for camera in cameras for rtt in camera.rtts_ms]
    errors: dict[str, int] = {}
    for camera in cameras:
        for code, number in camera.errors.items():
            errors[code] = errors.get(code, 0) + number
    faces = sorted(set().union(*(camera.faces for camera in cameras)))
    print(f"N={count:<3d} frames/s per client: mean {statistics.mean(per_client):5.1f}  min {min(per_client):5.1f}   "
          f"round trip p50 {percentile(rtts, 0.5):6.1f} ms  p95 {percentile(rtts, 0.95):6.1f} ms   "
          f"faces/frame {faces}  not answered {errors or 0}", flush=True)
    print(stage_report(cameras), flush=True)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(url: str, frame: bytes, pid: int, count: int, seconds: float) -> None:
    """Stream for a long time in slices, printing the server's RSS after each, to show memory stays flat."""
    print(f"soak: {count} clients for {seconds:.0f} s; server RSS at start {rss_mb(pid):.0f} MB", flush=True)
    slices = max(1, int(seconds // 30))
    for number in range(slices):
        run_clients(url, frame, count, seconds / slices)
        print(f"  after {(number + 1) * seconds / slices:5.0f} s: RSS {rss_mb(pid):.0f} MB", flush=True)


def sweep(url: str | list[str], frame: bytes, args: argparse.Namespace) -> dict[tuple[int, int], list[Camera]]:
    """Warm up, then every window and client count; returns the cameras of each (window, count)."""
    run_clients(url, frame, 1, 2.0)  # warm-up: first connections, first batches
    results = {}
    for window in (int(n) for n in args.window.split(",")):
        print(f"-- {window} frame(s) in flight per client", flush=True)
        for count in (int(n) for n in args.clients.split(",")):
            results[window, count] = run_clients(url, frame, count, args.seconds, window)
            report(count, args.seconds, results[window, count])
    return results


def bench_topology(frame: bytes, args: argparse.Namespace) -> dict[tuple[int, int], list[Camera]]:
    """The same sweep against deploy/topology.py: model workers behind Redis, gunicorn eventlet web processes."""
    sys.path.insert(0, str(REPO))
    from deploy.topology import FAKE_PREDICTOR, Topology, services_missing

    missing = services_missing()
    if missing:
        raise SystemExit(f"--target topology {missing}")
    web_env = {"EMO_RATELIMIT_ENABLED": "0", "EMO_INFERENCE_MAX_PENDING": "64"}
    with tempfile.TemporaryDirectory() as workdir, \
            Topology(Path(workdir), workers=args.topology_workers, web=args.topology_web,
                     predictor=FAKE_PREDICTOR if args.fake else args.predictor, web_env=web_env) as topology:
        print(f"topology: {args.topology_workers} model worker(s), {args.topology_web} gunicorn eventlet web "
              f"process(es), Redis {topology.redis_url}", flush=True)
        return sweep(topology.urls, frame, args)


def hop_report(embedded: list[Camera], topology: list[Camera]) -> None:
    """What the remote hop adds at N=1: round trip, and time in the web process beyond the model's own."""
    def medians(cameras: list[Camera]) -> tuple[float, float]:
        stages = [stage for camera in cameras for stage in camera.stages]
        beyond = statistics.median(float(s.get("server", 0)) - float(s.get("total", 0)) for s in stages)
        return percentile([rtt for camera in cameras for rtt in camera.rtts_ms], 0.5), beyond

    (embedded_rtt, embedded_beyond), (topology_rtt, topology_beyond) = medians(embedded), medians(topology)
    print(f"remote hop at N=1: round trip p50 {topology_rtt:.1f} ms vs embedded {embedded_rtt:.1f} ms "
          f"({topology_rtt - embedded_rtt:+.1f} ms); web process time beyond the model p50 "
          f"{topology_beyond:.1f} ms vs {embedded_beyond:.1f} ms", flush=True)


def main() -> None:
    """Run the sweep against each target (embedded server, topology), the soak, and the hop comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming time per client count")
    parser.add_argument("--soak", type=float, default=120.0, help="length of the memory soak (0: none)")
    parser.add_argument("--soak-clients", type=int, default=4)
    parser.add_argument("--window", default="1,2", help="frames in flight per client, comma-separated")
    parser.add_argument("--fake", action="store_true", help="use the fake test predictor (no weights needed)")
    parser.add_argument("--predictor", help="predictor spec (default: the app's real pipeline)")
    parser.add_argument("--target", default="embedded",
                        help="comma-separated: embedded (python -m webapp, model in-process) and/or topology "
                             "(deploy/topology.py: model workers behind Redis, gunicorn web processes)")
    parser.add_argument("--topology-workers", type=int, default=2)
    parser.add_argument("--topology-web", type=int, default=2)
    args = parser.parse_args()
    targets = args.target.split(",")
    results: dict[str, dict[tuple[int, int], list[Camera]]] = {}
    predictor = FAKE_SPEC if args.fake else args.predictor
    frame, port = face_frame_jpeg(), free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"640x480 JPEG frames of {len(frame) / 1024:.0f} KB, predictor {predictor or 'default'}, "
          f"paced by ack (at most {MAX_FPS}/s per client)", flush=True)
    if "topology" in targets:
        print("== target: topology", flush=True)
        results["topology"] = bench_topology(frame, args)
    if "embedded" not in targets:
        return
    print("== target: embedded", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(port, Path(workdir), predictor)
        try:
            wait_healthy(url, server)
            results["embedded"] = sweep(url, frame, args)
            if "topology" in results and (1, 1) in results["embedded"]:
                hop_report(results["embedded"][1, 1], results["topology"][1, 1])
            if args.soak > 0:
                soak(url, frame, server.pid, args.soak_clients, args.soak)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
