"""A webhook receiver on loopback that checks what callrec sends as the spec says a receiver
must: the ``v1`` signature with the spec's own library (standardwebhooks), the ``v1a`` one with
Ed25519 (cryptography), the timestamp within five minutes. It can be taken down and brought up
on the same port (an outage), or answer with an error status."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook

from callrec.webhooks.signing import new_secret, new_signing_key


@dataclass(frozen=True)
class Delivery:
    id: str
    type: str
    data: dict[str, Any]
    signatures: tuple[str, ...]  # the versions that verified: "v1", "v1a"


class Receiver:
    def __init__(self, status: int = 204) -> None:
        self.secret = new_secret()
        self.signing_key, self.public_key = new_signing_key()
        self.status = status  # what the endpoint answers (a 503 makes callrec retry)
        self.deliveries: list[Delivery] = []
        self.rejected: list[str] = []  # why a request did not verify
        self.arrived: list[str] = []  # every verified request's webhook-id, as it arrives
        self.hang = False  # hold each request (a sender killed while it waits), then 503
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def env(self, name: str = "hooks", events: list[str] | None = None) -> dict[str, str]:
        """callrec's settings for this endpoint (both signatures), as environment variables."""
        prefix = f"CALLREC_WEBHOOKS__ENDPOINTS__{name.upper()}__"
        env = {prefix + "URL": self.url, prefix + "SECRET": self.secret,
               prefix + "SIGNING_KEY": self.signing_key,
               "CALLREC_WEBHOOKS__RETRY_FIRST_S": "0.2", "CALLREC_WEBHOOKS__RETRY_MAX_S": "1",
               "CALLREC_WEBHOOKS__POLL_S": "0.2"}
        if events is not None:
            env[prefix + "EVENTS"] = json.dumps(events)
        return env

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.take({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Stop hanging: requests held answer 503, later ones are taken."""
        self.hang = False
        self._release.set()

    def down(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(self, headers: dict[str, str], body: bytes) -> int:
        try:
            verified = self.verify(headers, body)
        except Exception as exc:  # noqa: BLE001 (a receiver answers 400 to anything bad)
            with self._lock:
                self.rejected.append(f"{type(exc).__name__}: {exc}")
            return 400
        with self._lock:
            self.arrived.append(headers["webhook-id"])
        if self.hang:
            self._release.wait(60)
            return 503
        if self.status < 300:
            payload = json.loads(body)
            with self._lock:
                self.deliveries.append(Delivery(headers["webhook-id"], payload["type"],
                                                payload["data"], verified))
        return self.status

    def verify(self, headers: dict[str, str], body: bytes) -> tuple[str, ...]:
        Webhook(self.secret).verify(body, headers)  # v1, the timestamp's tolerance too
        # The spec's signed content, written out here rather than taken from callrec.
        content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        public = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(self.public_key.removeprefix("whpk_")))
        versions = dict(s.split(",", 1) for s in headers["webhook-signature"].split(" "))
        public.verify(base64.b64decode(versions["v1a"]), content)  # raises InvalidSignature
        return tuple(sorted(versions))

    def wait(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.05)
        with self._lock:
            raise AssertionError(f"{len(self.deliveries)} webhook(s), wanted {count}: "
                                 f"{[(d.type, d.data.get('call_id')) for d in self.deliveries]}"
                                 f"; rejected {self.rejected}")

    def of(self, call_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.data.get("call_id") == call_id]
