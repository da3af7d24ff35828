"""The load generator of the million bench, run as a process of its own (so the client does not share the
gateway's Python process): ``connections`` keep-alive HTTP/1.1 connections on loopback, each sending the next
request of a shared list until the time is up. A request whose path starts with ``PAGE:`` is a paged search
followed to its end: every page (the ``next`` link of the Bundle) is one timed request.

    python -m tests.bench.million_client PORT TOKEN CONNECTIONS SECONDS PATHS_FILE RESULT_FILE

Writes JSON to RESULT_FILE: the latencies (ms) of the timed requests, the statuses, the searchsets that
came back empty, and the CPU seconds this process used. A file, not standard output: a pipe was once
seen to end after 64 KiB of several hundred, the process exiting 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

HOST = "127.0.0.1"


class Connection:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = f"Host: {HOST}:{port}\r\nAccept: application/fhir+json\r\nAuthorization: Bearer {token}\r\n\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        body = b""
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                parts.append((await self.reader.readexactly(size + 2))[:-2])
                if size == 0:
                    break
            body = b"".join(parts)
        elif length:
            body = await self.reader.readexactly(length)
        return int(head[9:12]), body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


ENTRIES = b',"entry":['


def _head(body: bytes) -> tuple[dict[str, Any], bool]:
    """The Bundle's elements before its entries, and whether it has no entry. The gateway writes the
    entries last (service.fhir.bundle.splice): the head is parsed alone, so that the load generator, on
    the gateway's machine, spends little of its CPU on bodies it does not read; any other shape is
    parsed whole."""
    at = body.find(ENTRIES)
    if at < 0:
        bundle = orjson.loads(body)
        return bundle, not bundle.get("entry")
    return orjson.loads(body[:at] + b"}"), body[at + len(ENTRIES) : at + len(ENTRIES) + 1] == b"]"


def _next(head: dict[str, Any]) -> str | None:
    for link in head.get("link") or []:
        if link.get("relation") == "next":
            parts = urlsplit(link["url"])
            return f"{parts.path}?{parts.query}" if parts.query else str(parts.path)
    return None


def next_link(body: bytes) -> str | None:
    return _next(_head(body)[0])


def no_entries(body: bytes) -> bool:
    return _head(body)[1]


async def run(port: int, token: str, connections: int, seconds: float, paths: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    empty = 0
    pages = 0
    turn = iter(range(10**9))
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal empty, pages
        http = Connection(port, token)
        try:
            while time.perf_counter() < stop_at:
                path: str | None = paths[next(turn) % len(paths)]
                assert path is not None
                paged = path.startswith("PAGE:")
                path = path.removeprefix("PAGE:")
                first = True
                while path is not None:
                    sent = time.perf_counter()
                    status, body = await http.get(path)
                    latencies.append((time.perf_counter() - sent) * 1000)
                    statuses[status] += 1
                    if status != 200:
                        break
                    head, nothing = _head(body)  # parsed once a response
                    if first and nothing:
                        empty += 1
                    first = False
                    path = _next(head) if paged else None
                    pages += paged
        finally:
            await http.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return {
        "latencies": latencies,
        "statuses": {str(k): v for k, v in statuses.items()},
        "empty": empty,
        "pages": pages,
    }


def main() -> None:
    port, token, connections, seconds, paths_file, result_file = sys.argv[1:7]
    paths = orjson.loads(Path(paths_file).read_bytes())
    began = time.process_time()
    # uvloop, as the gateway runs: the generator shares the machine's cores with the gateway and PostgreSQL,
    # so the CPU it spends is taken from what it measures (its CPU is reported with the results)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(int(port), token, int(connections), float(seconds), paths))
    result["cpu_seconds"] = time.process_time() - began
    Path(result_file).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
