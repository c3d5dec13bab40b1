"""Load benchmark of the forecast API (not a test): single-store forecast lookups at a fixed rate.

Starts ``uvicorn serving.api:app`` on a free loopback port (``--workers`` processes) over a published
warehouse, then an open-loop asyncio load generator (httpx2) sends ``GET /stores/{random store}/forecast``
(the champion's 42 daily rows with intervals) at ``--rate`` requests per second for ``--duration`` seconds
after a warm-up. Latency is measured from each request's *scheduled* send time to the end of its response,
so queueing in the client or server counts (no coordinated omission). Reports throughput, p50/p90/p99/max
and the server's CPU use, and writes JSON under bench/results/.

    .venv/bin/python bench/load_api.py                       # published warehouse, else the pipeline on 1115 stores
    .venv/bin/python bench/load_api.py --mode per_request    # ATTACH the file for every request instead
    .venv/bin/python bench/load_api.py --micro               # also time the ways of opening the file

Only loopback addresses are ever used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ensure_published(args) -> Path:
    """``--published``, else DATA_DIR's published copy, else (or with ``--sample``) what the real pipeline
    (profile fast) builds and publishes from ``--stores`` synthetic stores under bench/results/sample-N/:
    built once and reused (a few minutes for 1115 stores)."""
    from serving.reader import published_path

    if args.published:
        return published_path(args.published)
    default = published_path(None)
    if default.exists() and not args.sample:
        return default
    sample_dir = RESULTS / f"sample-{args.stores}"
    target = sample_dir / "data" / "published" / "warehouse.duckdb"
    if not target.exists():
        from ingestion.synthetic import generate_dataset
        from orchestration.definitions import materialize_pipeline

        print(f"running the pipeline (profile fast) on {args.stores} synthetic stores under {sample_dir} ...",
              flush=True)
        t0 = time.perf_counter()
        generate_dataset(sample_dir / "raw", n_stores=args.stores, start="2013-01-01", end="2015-07-31")
        if not materialize_pipeline(sample_dir / "data", sample_dir / "raw", profile="fast").success:
            raise SystemExit(f"the pipeline failed on the sample under {sample_dir}")
        print(f"  built and published in {time.perf_counter() - t0:.1f}s", flush=True)
    return target


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def server_pids(root_pid: int) -> list[int]:
    pids = [root_pid]
    try:
        children = Path(f"/proc/{root_pid}/task/{root_pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


def start_server(published: Path, port: int, workers: int, mode: str, log_path: Path,
                 app: str = "serving.api:app") -> subprocess.Popen:
    env = {**os.environ, "PUBLISHED_WAREHOUSE": str(published), "SERVING_CONNECTION_MODE": mode,
           "API_RATE_LIMIT_PER_MIN": "0",  # one client at thousands a minute: the per-caller limit would refuse it
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the API did not start:\n{log_path.read_text()}")
        time.sleep(0.2)


async def drive(port: int, store_ids: list[int], rate: float, duration: float, max_in_flight: int,
                seed: int, versions: dict | None = None) -> list[tuple[float, float, float, int]]:
    """Open loop: request i is due at t0 + i / rate. Returns (due, sent, done, status) per request.
    ``versions``: when given, counts the published_version of every answer."""
    import httpx2 as httpx
    import orjson

    rng = random.Random(seed)
    n = int(rate * duration)
    results: list[tuple[float, float, float, int]] = []
    gate = asyncio.Semaphore(max_in_flight)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=10.0) as client:
        async def one(due: float, store: int) -> None:
            async with gate:
                sent = time.perf_counter()
                try:
                    r = await client.get(f"/stores/{store}/forecast")
                    body = await r.aread()
                    status = r.status_code
                    if versions is not None and status == 200:
                        v = orjson.loads(body)["published_version"]
                        versions[v] = versions.get(v, 0) + 1
                except Exception:  # noqa: BLE001 -- counted as an error
                    status = -1
                results.append((due, sent, time.perf_counter(), status))

        tasks = []
        t0 = time.perf_counter() + 0.05
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due, rng.choice(store_ids))))
        await asyncio.gather(*tasks)
    return results


class Republisher:
    """Publishes the build warehouse behind the published copy (``DATA_DIR/warehouse.duckdb`` beside
    ``DATA_DIR/published/``) again every few seconds while the load runs (a pipeline finishing runs
    meanwhile): the API must keep answering, from one version per answer."""

    def __init__(self, published: Path, every_s: float):
        import threading

        self.build = published.parent.parent / "warehouse.duckdb"
        if not self.build.exists():
            raise SystemExit(f"--publish-every needs the build warehouse {self.build}; use --sample")
        self.published_dir, self.every_s = published.parent, every_s
        self.published, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # a separate process, like the pipeline: its CPU is neither the server's nor the load generator's
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "warehouse.publish", "--build", str(self.build), "--published-dir",
               str(self.published_dir)]
        while not self._stop.wait(self.every_s):
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            if done.returncode == 0:
                self.published.append({"output": done.stdout.strip(), "seconds": round(time.perf_counter() - t0, 2)})
            else:
                self.errors.append(done.stderr[-2000:])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def summarise(results, duration: float) -> dict:
    arr = np.array([(d, s, e, st) for d, s, e, st in results])
    ok = arr[arr[:, 3] == 200]
    latency_ms = (ok[:, 2] - ok[:, 0]) * 1000  # from the scheduled time
    service_ms = (ok[:, 2] - ok[:, 1]) * 1000  # from the actual send
    span = arr[:, 2].max() - arr[:, 0].min()
    pct = lambda a, q: round(float(np.percentile(a, q)), 2) if len(a) else None  # noqa: E731
    return {
        "requests": len(arr), "ok": len(ok), "errors": int((arr[:, 3] != 200).sum()),
        "throughput_rps": round(len(ok) / span, 1), "target_duration_s": duration, "span_s": round(span, 2),
        "latency_ms": {"p50": pct(latency_ms, 50), "p90": pct(latency_ms, 90), "p99": pct(latency_ms, 99),
                       "max": round(float(latency_ms.max()), 2) if len(ok) else None,
                       "mean": round(float(latency_ms.mean()), 2) if len(ok) else None},
        "service_ms": {"p50": pct(service_ms, 50), "p99": pct(service_ms, 99)},
        "max_send_lag_ms": round(float(((arr[:, 1] - arr[:, 0]) * 1000).max()), 2),
    }


def run_load(published: Path, args, mode: str) -> dict:
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_server(published, port, args.workers, mode, RESULTS / f"uvicorn-{mode}.log", args.app)
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/stores?limit=100000", timeout=10) as r:
            store_ids = [s["store_id"] for s in json.loads(r.read())]
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=10) as r:
            health = json.loads(r.read())
        print(f"[{mode}] {len(store_ids)} stores, published version {health['published_version']}; "
              f"warm-up {args.warmup}s, then {args.rate:g} req/s for {args.duration:g}s ...", flush=True)
        asyncio.run(drive(port, store_ids, args.rate, args.warmup, args.max_in_flight, seed=1))
        pids = server_pids(proc.pid)
        cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
        client0 = cpu_seconds([os.getpid()])
        versions: dict[str, int] | None = None
        publisher = None
        if args.publish_every:
            versions = {}
            publisher = Republisher(published, args.publish_every)
            publisher.start()
        try:
            results = asyncio.run(drive(port, store_ids, args.rate, args.duration, args.max_in_flight, seed=2,
                                        versions=versions))
        finally:
            if publisher:
                publisher.stop()
        cpu = cpu_seconds(pids) - cpu0
        wall = time.perf_counter() - wall0
        client_cpu = cpu_seconds([os.getpid()]) - client0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    summary = summarise(results, args.duration)
    if publisher:
        summary["republish"] = {"every_s": args.publish_every, "publications": publisher.published,
                                "publish_errors": publisher.errors, "answers_per_version": versions}
    summary.update({"load_average_after": os.getloadavg(), "mode": mode, "workers": args.workers,
                    "rate_rps": args.rate, "stores": len(store_ids),
                    "server_cpu_cores": round(cpu / wall, 2), "client_cpu_cores": round(client_cpu / wall, 2),
                    "published_version": health["published_version"]})
    return summary


def micro(published: Path, n: int = 200) -> dict:
    """Per-request cost of the ways a reader can open the published file, plus the forecast query."""
    import duckdb

    from serving.reader import reader_instance

    store = 1
    query = ("SELECT forecast_date, sales_pred, sales_lower, sales_upper, customers_pred, is_open, is_promo, "
             "actual_sales FROM marts.fct_sales_forecast WHERE store_id = ? AND is_latest_version "
             "AND model = 'random_forest' ORDER BY 1")
    out = {}

    def timed(label, fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out[label] = round((time.perf_counter() - t0) / n * 1000, 3)

    def connect_each():
        con = duckdb.connect(str(published), read_only=True, config={"threads": 1})
        con.execute(query, [store]).fetchall()
        con.close()

    shared = reader_instance()

    def attach_each():
        cur = shared.cursor()
        cur.execute(f"ATTACH '{published}' AS p (READ_ONLY)")
        cur.execute("USE p")
        cur.execute(query, [store]).fetchall()
        cur.execute("USE memory")
        cur.execute("DETACH p")
        cur.close()

    cached = reader_instance()
    cached.execute(f"ATTACH '{published}' AS published (READ_ONLY)")

    def cursor_each():
        cur = cached.cursor()
        cur.execute("USE published")
        cur.execute(query, [store]).fetchall()
        cur.close()

    timed("new DuckDB instance per request (duckdb.connect(path, read_only=True)), ms", connect_each)
    timed("ATTACH/DETACH per request on a shared in-memory instance, ms", attach_each)
    timed("cursor per request on a per-version attached instance (the API's default), ms", cursor_each)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--published", help="published warehouse file or folder (default: DATA_DIR/published, "
                                            "else the pipeline's output on synthetic data)")
    parser.add_argument("--sample", action="store_true",
                        help="use the pipeline's output on synthetic data even if DATA_DIR has a published copy")
    parser.add_argument("--stores", type=int, default=1115, help="stores of the synthetic data")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (at most 120)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--mode", choices=["cached", "per_request", "both"], default="cached")
    parser.add_argument("--micro", action="store_true", help="also time the ways of opening the file")
    parser.add_argument("--app", default="serving.api:app", help="ASGI app for uvicorn (for experiments)")
    parser.add_argument("--publish-every", type=float, default=0.0,
                        help="publish the build warehouse again every N seconds during the measured run")
    args = parser.parse_args(argv)
    args.duration = min(args.duration, 120.0)
    args.rate = min(args.rate, 2000.0)

    published = ensure_published(args)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "published": str(published),
              "cpus": os.cpu_count(), "load_average_before": os.getloadavg(), "runs": []}
    if args.micro:
        report["micro"] = micro(published)
        for label, ms in report["micro"].items():
            print(f"  {ms:8.3f}  {label}")
    for mode in (["cached", "per_request"] if args.mode == "both" else [args.mode]):
        summary = run_load(published, args, mode)
        report["runs"].append(summary)
        lat = summary["latency_ms"]
        print(f"[{mode}] {summary['ok']}/{summary['requests']} ok, {summary['errors']} errors, "
              f"{summary['throughput_rps']} req/s; latency p50 {lat['p50']} ms, p90 {lat['p90']} ms, "
              f"p99 {lat['p99']} ms, max {lat['max']} ms; CPU: server {summary['server_cpu_cores']}, "
              f"load generator {summary['client_cpu_cores']} cores; 1-min load average "
              f"{summary['load_average_after'][0]:.2f}",
              flush=True)
        if "republish" in summary:
            rp = summary["republish"]
            print(f"[{mode}] republished {len(rp['publications'])} times during the run "
                  f"({', '.join(str(p['seconds']) + 's' for p in rp['publications'])}), publish errors "
                  f"{len(rp['publish_errors'])}; answers per version: {list(rp['answers_per_version'].values())}",
                  flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"load_api-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"results: {out}")
    return 0 if all(r["errors"] == 0 for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
