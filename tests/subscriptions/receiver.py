"""A real rest-hook receiver on 127.0.0.1: records every notification Bundle it is sent, answers
with the status the test sets, and can hold a request (to kill the gateway mid-delivery)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str = ""
    status: int = 200
    hold: threading.Event | None = None
    """While set to an unset Event, event notifications wait for it (the request stays open)."""
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    drop_held: bool = False
    """A held request released after its sender died is dropped (never acknowledged to anyone)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.received if notification_type(b) == kind]

    def wait_for(self, kind: str, count: int = 1, seconds: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.of_type(kind)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"no {count} {kind} notification(s) within {seconds}s: {[notification_type(b) for b in self.received]}"
        )


def status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return dict(bundle["entry"][0]["resource"])


def parameter(bundle: dict[str, Any], name: str) -> Any:
    for p in status_of(bundle)["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value") or k == "part")
    return None


def notification_type(bundle: dict[str, Any]) -> str:
    return str(parameter(bundle, "type"))


def event_numbers(bundle: dict[str, Any]) -> list[int]:
    found = []
    for p in status_of(bundle)["parameter"]:
        if p["name"] == "notification-event":
            found += [int(part["valueString"]) for part in p["part"] if part["name"] == "event-number"]
    return found


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
            hold = receiver.hold
            if hold is not None and notification_type(body) == "event-notification":
                receiver.held.set()
                hold.wait(60)
                if receiver.drop_held:
                    return
            with receiver.lock:
                receiver.received.append(body)
                receiver.headers.append(dict(self.headers.items()))
            self.send_response(receiver.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
