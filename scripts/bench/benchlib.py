"""Shared pieces of the benchmarks: the bench database, servers under test, pgbench and wrk runs, the table."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PYTHON.exists():
    # Every benchmark imports this module first: run it inside the project's virtual environment, as `scripts/test`
    # and `scripts/serve` set it up, whatever `python3` the shebang found.
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
PYTHON = sys.executable
BENCH_SCALE_REQUESTS = 1_000_000
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i], {["Accept-Encoding"] = "gzip"})
end
"""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_database(data_dir: Path) -> tuple[str, Any]:
    """The embedded cluster of the bench data directory, with the benchmark-size demo City loaded."""
    from geoserver.cluster import EmbeddedCluster

    cluster = EmbeddedCluster(data_dir)
    cluster.ensure_started()
    # Every peer connects the same way, over loopback TCP (TiPg's settings refuse a socket-only URL).
    url = f"postgresql://geoserver@127.0.0.1:{cluster.running_port()}/geoserver"
    env = {**os.environ, "GEOSERVER_DATA_DIR": str(data_dir)}
    env.pop("GEOSERVER_DATABASE_URL", None)
    subprocess.run([PYTHON, "-m", "geoserver", "migrate"], env=env, capture_output=True, check=True)
    listed = subprocess.run(
        [PYTHON, "-m", "geoserver", "layers", "list", "--json"], env=env, capture_output=True, text=True, check=True
    )
    counts = {row["id"]: row["features"] for row in json.loads(listed.stdout)}
    if counts.get("service_requests", 0) < BENCH_SCALE_REQUESTS:
        print("loading the benchmark-size demo City (a few minutes)...", file=sys.stderr)
        subprocess.run([PYTHON, "-m", "geoserver", "demo", "--scale", "bench"], env=env, check=True)
    return url, cluster


def ensure_tipg(data_dir: Path) -> str:
    """TiPg 1.6 (the version the goals were set against) in a virtual environment of its own; returns its Python."""
    venv = data_dir / "tipg-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "uvicorn").exists():
        print("installing TiPg into its own virtual environment...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tipg>=1.6,<1.7", "uvicorn"], check=True)
    return str(python)


def _wait(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def until_listening(port: int, sockets: int, seconds: float = 60) -> None:
    """Wait until `sockets` sockets listen on the port: each of this server's workers listens on one of its own, once
    its app has started, which may be after another worker answered `/ready`. Connections opened before would all
    go to the workers already listening, and stay there."""
    deadline = time.monotonic() + seconds
    while True:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        listening = [r for r in rows if int(r.split()[1].rsplit(":", 1)[1], 16) == port and r.split()[3] == "0A"]
        if len(listening) >= sockets:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(listening)} of {sockets} workers listen on port {port}")
        time.sleep(0.1)


class Server:
    """A server under test, as a subprocess on loopback, stopped on exit."""

    def __init__(self, args: list[str], env: dict[str, str], port: int, ready_path: str) -> None:
        self.args, self.env, self.port, self.ready_path = args, env, port, ready_path
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    def geoserver(cls, database_url: str, port: int, *, cache_mb: int, workers: int = 1) -> Server:
        """This server on the bench database."""
        env = {
            **os.environ,
            "GEOSERVER_DATABASE_URL": database_url,
            "GEOSERVER_PORT": str(port),
            "GEOSERVER_LOAD_DEMO": "false",
            "GEOSERVER_LOG_LEVEL": "warning",
            "GEOSERVER_TILE_CACHE_MB": str(cache_mb),
            "GEOSERVER_WORKERS": str(workers),
        }
        return cls([PYTHON, "-m", "geoserver", "serve"], env, port, "/ready")

    @classmethod
    def tipg(cls, python: str, database_url: str, port: int, schema: str = "layer_data") -> Server:
        """TiPg on the same database (its defaults, the layer schema exposed)."""
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TIPG_DB_SCHEMAS": json.dumps([schema]),
            "TIPG_MAX_FEATURES_PER_TILE": "20000",
        }
        args = [
            python,
            "-m",
            "uvicorn",
            "tipg.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        return cls(args, env, port, "/collections")

    def __enter__(self) -> Server:
        print(f"starting {' '.join(self.args[-3:])} on port {self.port}", file=sys.stderr)
        self.log = open(f"/tmp/bench-server-{self.port}.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            _wait(self.url + self.ready_path, self.process)
            until_listening(self.port, int(self.env.get("GEOSERVER_WORKERS", "1")))
        except RuntimeError:
            self.process.kill()
            self.log.close()
            raise RuntimeError(Path(self.log.name).read_text(errors="replace")[-2000:]) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def write_paths(path: Path, paths: list[str]) -> Path:
    """A list of request paths, one a line, for wrk."""
    path.write_text("\n".join(paths) + "\n")
    return path


def one_pass(base_url: str, paths: Path, workers: int = 8) -> None:
    """Request every path once (a few at a time): afterwards a cache holds the whole list."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(path: str) -> None:
        request = urllib.request.Request(base_url + path, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback only
            response.read()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, paths.read_text().split()))


def _ms(text: str) -> float:
    value, unit = float(re.match(r"[\d.]+", text).group()), re.sub(r"[\d.]+", "", text)  # type: ignore[union-attr]
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(base_url: str, paths: Path, seconds: int, connections: int = 16) -> dict[str, float]:
    """Requests per second, p50 and p99 (ms) and the error count of one wrk run over the path list."""
    script = paths.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(script),
            base_url,
        ],
        env={**os.environ, "BENCH_PATHS": str(paths)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(errors.group(1)) if errors else 0.0}


def pgbench(cluster: Any, scripts: list[tuple[Path, int]], seconds: int, clients: int = 4) -> dict[str, float]:
    """Transactions per second of the weighted scripts through pgbench (each transaction is one tile)."""
    port = cluster.running_port()
    # Prepared, as the server (psycopg) and TiPg (asyncpg) run theirs: planned once per connection.
    args = [cluster.bin("pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds)]
    for path, weight in scripts:
        args += ["-f", f"{path}@{weight}"]
    args += ["-h", "127.0.0.1", "-p", str(port), "-U", "geoserver", "geoserver"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return {"rps": tps, "p50": float(latency.group(1)) if latency else float("nan"), "p99": float("nan"), "errors": 0.0}


_TABLE = (
    ["raw PostGIS (pgbench, 4 clients)", "TiPg", "ours cold", "ours warm", "warm, 2 workers"],
    ["raw", "tipg", "cold", "warm", "warm2"],
    [("cold", "tipg"), ("cold", "raw"), ("warm", "tipg"), ("warm2", "tipg")],
)
_IN_PLACE_TABLE = (
    ["naive SQL (pgbench, 4 clients)", "our SQL (pgbench)", "TiPg", "ours cold", "ours warm"],
    ["naive", "raw", "tipg", "cold", "warm"],
    [("cold", "tipg"), ("cold", "naive"), ("warm", "tipg")],
)
_RATIO_NAMES = {"cold": "cold", "warm": "warm", "warm2": "warm 2w", "tipg": "TiPg", "raw": "raw", "naive": "naive"}


def print_table(rows: list[dict[str, Any]], *, in_place: bool = False) -> None:
    """The measured table, as Markdown, with the ratios the goals are stated in.

    The in-place table has the naive statement and ours through pgbench instead of raw PostGIS and a second worker.
    """
    headers, keys, ratios = _IN_PLACE_TABLE if in_place else _TABLE
    columns = ["workload", *headers, *(f"{_RATIO_NAMES[a]} / {_RATIO_NAMES[b]}" for a, b in ratios)]
    print("\n| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        cells = [_cell(row.get(k)) for k in keys] + [_ratio(row.get(a), row.get(b)) for a, b in ratios]
        print(f"| {row['workload']} | " + " | ".join(cells) + " |")


def _cell(m: dict[str, float] | None) -> str:
    if m is None:
        return "—"
    text = f"{m['rps']:,.0f}/s"
    if m["p99"] == m["p99"]:  # not NaN: a latency distribution was measured
        text += f" (p50 {m['p50']:.1f} ms, p99 {m['p99']:.1f} ms)"
    else:
        text += f" (mean {m['p50']:.1f} ms)"
    if m.get("errors"):
        text += f" [{m['errors']:.0f} errors]"
    return text


def _ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> str:
    return f"{a['rps'] / b['rps']:.2f}x" if a and b and b["rps"] else "—"
