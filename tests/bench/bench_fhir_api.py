"""FHIR API throughput: the gateway as a real process against a floor measured in the same run.

    python -m tests.bench.bench_fhir_api [SECONDS] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432]
    (or --postgres "postgresql+asyncpg://postgres@/?host=/var/run/postgresql": the server's Unix socket)

Starts, on 127.0.0.1 only:
- the gateway: `peerlink migrate`, `peerlink seed`, `peerlink serve` (uvicorn, log level warning)
  on a temporary SQLite database (the demo program: 12 patients, 24 encounters), or with --postgres SERVER
  on a fresh database created on that PostgreSQL server for the run (and dropped after it);
- the floor: a bare FastAPI app under uvicorn, in its own process, that answers the same URLs with
  the same bytes the gateway returned (the cost of HTTP, the framework and the bytes alone);
- a ceiling: a raw asyncio server answering with the same bytes, to show what the load generator
  itself can reach (it must be well above the gateway, or the figures measure the generator).
The load generator is a separate process: an asyncio HTTP/1.1 client with 32 keep-alive
connections, each sending its next request when the previous response is in. Every scenario runs
for a bounded time (SECONDS, default 3, after a short warm-up). It prints requests/s and p50/p99
latency per scenario for the gateway beside the floor, and the ratio gateway/floor
(targets, issue 21: read >= 0.50x floor, a 20-resource search >= 0.15x floor). The machine's load
average is printed with the figures: on a shared machine, run it two or three times.

The gateway is measured as deployed: every request carries a bearer token (the seeded demo client's,
from `peerlink token`). A second gateway process on the same database runs with
PEERLINK_AUTH_REQUIRED=false, and the read scenario runs against both in the same run: the
difference is what authentication costs (target: at most 15% more read latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

HOST = "127.0.0.1"
CONNECTIONS = 32
WARMUP_SECONDS = 0.5
MAX_REQUESTS = 200_000
FHIR_JSON = "application/fhir+json; charset=utf-8"
ROOT = Path(__file__).resolve().parents[2]
PEERLINK = str(Path(sys.executable).parent / "peerlink")
TARGETS = {"read": 0.5, "search": 0.15}
AUTH_OVERHEAD_TARGET = 0.15


# --- the floor app and the ceiling server (run in their own processes) -------------------------


def _canned() -> dict[str, bytes]:
    """URL (path?query) -> bytes, from the file the benchmark wrote for the floor processes."""
    loaded: dict[str, str] = orjson.loads(Path(os.environ["BENCH_FHIR_CANNED"]).read_bytes())
    return {url: body.encode() for url, body in loaded.items()}


def floor_app() -> FastAPI:
    """A bare FastAPI app returning, for each URL, the bytes the gateway returned for it."""
    canned = _canned()
    app = FastAPI()

    @app.get("/{path:path}")
    async def answer(request: Request, path: str) -> Response:
        url = request.url.path + ("?" + request.url.query if request.url.query else "")
        body = canned.get(url)
        if body is None:
            return Response(status_code=404)
        return Response(content=body, media_type=FHIR_JSON)

    return app


class _CeilingProtocol(asyncio.Protocol):
    """Answers every complete request head with the canned response (no parsing beyond the path)."""

    def __init__(self, responses: dict[bytes, bytes]) -> None:
        self.responses = responses
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # an asyncio.Transport (uvloop's does not subclass it)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            target = head.split(b" ", 2)[1]
            self.transport.write(self.responses.get(target, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"))


def _ceiling(port: int) -> None:
    responses = {
        url.encode(): b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
        % (FHIR_JSON.encode(), len(body), body)
        for url, body in _canned().items()
    }

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: _CeilingProtocol(responses), HOST, port)
        async with server:
            await server.serve_forever()

    _run(serve())


# --- the load generator (runs in its own process) ----------------------------------------------


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _connection(
    port: int, request: bytes, stop_at: float, record_from: float, latencies: list[float], budget: list[int]
) -> int:
    """One keep-alive connection: request, read the whole response, repeat until the time is up."""
    reader, writer = await asyncio.open_connection(HOST, port)
    errors = 0
    clock = time.perf_counter
    try:
        while budget[0] > 0:
            started = clock()
            if started >= stop_at:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            ended = clock()
            if started >= record_from:
                budget[0] -= 1
                latencies.append(ended - started)
                if head[9:12] != b"200":
                    errors += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return errors


async def _load(port: int, path: str, seconds: float, connections: int, token: str = "") -> dict[str, Any]:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/fhir+json\r\n{auth}\r\n".encode()
    began = time.perf_counter()
    record_from = began + WARMUP_SECONDS
    stop_at = record_from + seconds
    latencies: list[float] = []
    budget = [MAX_REQUESTS]
    errors = await asyncio.gather(
        *(_connection(port, request, stop_at, record_from, latencies, budget) for _ in range(connections))
    )
    elapsed = min(time.perf_counter(), stop_at) - record_from
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": sum(errors),
        "rps": n / elapsed if elapsed > 0 else 0.0,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
    }


def load(port: int, path: str, seconds: float, connections: int = CONNECTIONS, token: str = "") -> dict[str, Any]:
    """Run the load generator in a separate process; its figures come back as JSON."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.bench_fhir_api",
            "--load",
            str(port),
            path,
            str(seconds),
            str(connections),
            token,
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    result: dict[str, Any] = orjson.loads(out)
    return result


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready: {url}")
        time.sleep(0.1)


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, ready_url, log)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class Scenario:
    key: str
    label: str
    path: str
    body: bytes | None = None
    note: str = ""


def scenarios(base: str, token: str) -> list[Scenario]:
    """The URLs, and the bytes the gateway answers them with (None: not served yet)."""
    auth = {"Authorization": f"Bearer {token}"}
    history = httpx.get(f"{base}/fhir/Patient/_history", params={"_count": 1}, headers=auth).json()
    patient_id = history["entry"][0]["resource"]["id"]
    found = [
        Scenario("read", "read Patient by id", f"/fhir/Patient/{patient_id}"),
        Scenario("search", "search Encounter, 20", "/fhir/Encounter?_count=20"),
        Scenario("history", "history Encounter, 20", "/fhir/Encounter/_history?_count=20"),
    ]
    for scenario in found:
        response = httpx.get(base + scenario.path, headers={"Accept": "application/fhir+json", **auth})
        if response.status_code != 200:
            scenario.note = f"not served yet (HTTP {response.status_code})"
            continue
        scenario.body = response.content
        document = response.json()
        if document.get("resourceType") == "Bundle":
            entries = [e for e in document.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
            scenario.note = f"{len(entries)} resources, {len(response.content)} bytes"
        else:
            scenario.note = f"{len(response.content)} bytes"
    return found


@contextlib.contextmanager
def fresh_postgres(server: str | None) -> Iterator[str | None]:
    """A new, empty database on the PostgreSQL server at ``server`` (a URL without the database, or
    with ``?host=/var/run/postgresql``: its Unix socket), its URL; dropped afterwards. None without a
    server (the bench then runs on SQLite)."""
    if not server:
        yield os.environ.get("PEERLINK_BENCH_DATABASE_URL")
        return
    import asyncpg

    name = f"peerlink_bench_{os.getpid()}_{int(time.time())}"
    from sqlalchemy.engine import make_url

    url = make_url(server)
    socket_dir = url.query.get("host")
    admin = url.set(drivername="postgresql", database="postgres", query={})

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False), host=socket_dir)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main(seconds: float = 3.0, postgres: str | None = None) -> dict[str, float]:
    """Runs every scenario; returns the ratio gateway/floor per scenario that could run."""
    with fresh_postgres(postgres) as database_url:
        return _main(seconds, database_url)


def _main(seconds: float, database_url: str | None) -> dict[str, float]:
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-") as tmp:
        workdir = Path(tmp)
        port, open_port, floor_port, ceiling_port = free_port(), free_port(), free_port(), free_port()
        env = {
            **os.environ,
            # PEERLINK_BENCH_DATABASE_URL: an empty database to measure on instead (e.g. PostgreSQL)
            "PEERLINK_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir}/peerlink.db",
            "PEERLINK_LOG_LEVEL": "WARNING",
            "PEERLINK_HOST": HOST,
            "PEERLINK_PORT": str(port),
            "PEERLINK_KEYS_DIR": str(workdir / "keys"),
            "PEERLINK_ACCESS_TOKEN_SECONDS": "3600",
        }
        open_env = {**env, "PEERLINK_PORT": str(open_port), "PEERLINK_AUTH_REQUIRED": "false"}
        for step in ("migrate", "seed"):
            subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=120)
        base = f"http://{HOST}:{port}"
        with (
            started([PEERLINK, "serve"], env, f"{base}/readyz", workdir / "gateway.log"),
            started([PEERLINK, "serve"], open_env, f"http://{HOST}:{open_port}/readyz", workdir / "open.log"),
        ):
            token = subprocess.run(
                [PEERLINK, "token"], env=env, check=True, capture_output=True, text=True, timeout=60
            ).stdout.strip()
            runnable = scenarios(base, token)
            canned = workdir / "canned.json"
            canned.write_bytes(orjson.dumps({s.path: s.body.decode() for s in runnable if s.body is not None}))
            floor_env = {**env, "BENCH_FHIR_CANNED": str(canned)}
            floor = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "tests.bench.bench_fhir_api:floor_app",
                "--host",
                HOST,
                "--port",
                str(floor_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            ceiling = [sys.executable, "-m", "tests.bench.bench_fhir_api", "--ceiling", str(ceiling_port)]
            with (
                started(floor, floor_env, f"http://{HOST}:{floor_port}/", workdir / "floor.log"),
                started(ceiling, floor_env, f"http://{HOST}:{ceiling_port}/", workdir / "ceiling.log"),
            ):
                print(
                    f"FHIR API benchmark: {CONNECTIONS} keep-alive connections on {HOST}, {seconds:g} s per run "
                    f"(after {WARMUP_SECONDS:g} s warm-up); requests/s (higher is better), latency in ms\n"
                    f"database: {env['PEERLINK_DATABASE_URL'].split('://')[0]}; "
                    f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
                )
                print(
                    f"{'scenario':<24}{'gateway':>9}{'p50':>7}{'p99':>7}{'floor':>9}{'p50':>7}{'p99':>7}"
                    f"{'ratio':>8}{'target':>8}{'ceiling':>9}"
                )
                for scenario in runnable:
                    if scenario.body is None:
                        print(f"{scenario.label:<24}{scenario.note}")
                        continue
                    ours = load(port, scenario.path, seconds, token=token)
                    bare = load(floor_port, scenario.path, seconds)
                    top = load(ceiling_port, scenario.path, min(seconds, 1.5))
                    if ours["errors"] or bare["errors"] or top["errors"]:
                        print(f"  (non-200 answers: gateway {ours['errors']}, floor {bare['errors']})")
                    ratio = ours["rps"] / bare["rps"] if bare["rps"] else 0.0
                    ratios[scenario.key] = ratio
                    target = TARGETS.get(scenario.key)
                    print(
                        f"{scenario.label:<24}{ours['rps']:>9.0f}{ours['p50_ms']:>7.1f}{ours['p99_ms']:>7.1f}"
                        f"{bare['rps']:>9.0f}{bare['p50_ms']:>7.1f}{bare['p99_ms']:>7.1f}{ratio:>7.2f}x"
                        f"{(f'{target:.2f}x' if target else '-'):>8}{top['rps']:>9.0f}"
                    )
                    print(f"{'':<24}{scenario.note}")
                    if scenario.key == "read":
                        ratios["auth_overhead"] = _auth_overhead(ours, load(open_port, scenario.path, seconds))
    for key, target in TARGETS.items():
        if key in ratios:
            verdict = "meets" if ratios[key] >= target else "BELOW"
            print(f"ratio {key} gateway/floor = {ratios[key]:.2f} (target >= {target:.2f}): {verdict}")
        else:
            print(f"ratio {key} gateway/floor: not measured (the route is not served yet)")
    if "auth_overhead" in ratios:
        overhead = ratios["auth_overhead"]
        verdict = "meets" if overhead <= AUTH_OVERHEAD_TARGET else "ABOVE"
        print(
            f"auth adds {overhead:+.1%} to mean read latency (same run; "
            f"target <= {AUTH_OVERHEAD_TARGET:.0%}): {verdict}"
        )
    return ratios


def _auth_overhead(with_auth: dict[str, Any], without: dict[str, Any]) -> float:
    """Extra mean read latency with bearer-token checks, relative to the same gateway without them.
    With a fixed number of connections each waiting for its answer, mean latency is connections/rps,
    so this is the throughput ratio (stricter than the p50, which is printed beside it)."""
    print(
        f"{'read, no auth':<24}{without['rps']:>9.0f}{without['p50_ms']:>7.1f}{without['p99_ms']:>7.1f}"
        "   (PEERLINK_AUTH_REQUIRED=false, same database)"
    )
    if not with_auth["rps"] or not without["p50_ms"]:
        return 0.0
    p50 = with_auth["p50_ms"] / without["p50_ms"] - 1
    print(f"{'':<24}auth: p50 latency {p50:+.1%}, requests/s {with_auth['rps'] / without['rps'] - 1:+.1%}")
    return float(without["rps"] / with_auth["rps"] - 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        token = sys.argv[6] if len(sys.argv) > 6 else ""
        figures = _run(_load(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), token))
        sys.stdout.write(orjson.dumps(figures).decode())
    elif len(sys.argv) > 1 and sys.argv[1] == "--ceiling":
        _ceiling(int(sys.argv[2]))
    else:
        arguments = sys.argv[1:]
        server = None
        if "--postgres" in arguments:
            at = arguments.index("--postgres")
            server = arguments[at + 1]
            del arguments[at : at + 2]
        main(float(arguments[0]) if arguments else 3.0, server)
