#!/usr/bin/env python3
"""A webhook receiver for the integration tests and the benchmark: it verifies EVERY delivery
with the official Standard Webhooks library (`pip install standardwebhooks`), on the bytes
exactly as they arrived, timestamp tolerance included.

Usage: webhook_receiver.py [PORT]   (0 or absent: any free port; prints "listening on PORT")

Endpoints are paths: a delivery to POST /hook/NAME is checked against the secrets configured for
NAME and answered as configured. Control (JSON, loopback only):
  POST /_config/NAME  {"secrets": ["whsec_..."], "fail_times": 0, "fail_status": 500,
                       "status": 200, "delay_ms": 0}
  POST /_clock        {"now": UNIX_SECONDS | null}  the "now" the library's tolerance check uses
                      (the app under test may run on a moved clock); null: the real time
  GET  /_log          every delivery: name, headers, body, which secrets verified, the error
  POST /_reset        forget the log
  GET  /_count        {"count": N} (for the benchmark: no log kept with "quiet": true)
"""

import json
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks.webhooks as swh
from standardwebhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
CONFIG = {}
LOG = []
COUNT = [0]
CLOCK = {"now": None}
QUIET = {"on": False}


class _Clock(datetime):
    """The library reads datetime.now(tz=utc) for its tolerance check: let the test set it."""

    @classmethod
    def now(cls, tz=None):
        n = CLOCK["now"]
        if n is None:
            return datetime.now(tz=tz)
        return datetime.fromtimestamp(n, tz=tz or timezone.utc)


swh.datetime = _Clock


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                self._json(200, LOG)
        elif self.path == "/_count":
            with LOCK:
                self._json(200, {"count": COUNT[0]})
        else:
            self._json(404, {})

    def do_POST(self):
        body = self._body()
        if self.path.startswith("/_config/"):
            with LOCK:
                CONFIG[self.path[len("/_config/"):]] = json.loads(body)
            return self._json(200, {})
        if self.path == "/_clock":
            CLOCK["now"] = json.loads(body).get("now")
            return self._json(200, {})
        if self.path == "/_quiet":
            QUIET["on"] = bool(json.loads(body).get("quiet"))
            return self._json(200, {})
        if self.path == "/_reset":
            with LOCK:
                LOG.clear()
                COUNT[0] = 0
            return self._json(200, {})
        if not self.path.startswith("/hook/"):
            return self._json(404, {})
        name = self.path[len("/hook/"):]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            cfg = dict(CONFIG.get(name, {}))
        verified = []
        error = None
        for i, secret in enumerate(cfg.get("secrets", [])):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(i)
            except WebhookVerificationError as e:
                error = str(e)
        delay = cfg.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000)
        with LOCK:
            seen = CONFIG.setdefault(name, {}).get("_seen", 0)
            CONFIG[name]["_seen"] = seen + 1
            fail = seen < cfg.get("fail_times", 0)
            status = cfg.get("fail_status", 500) if fail else cfg.get("status", 200)
            COUNT[0] += 1
            if not QUIET["on"]:
                LOG.append({
                    "name": name,
                    "at": time.time(),
                    "webhook_id": headers.get("webhook-id"),
                    "webhook_timestamp": headers.get("webhook-timestamp"),
                    "webhook_signature": headers.get("webhook-signature"),
                    "content_type": headers.get("content-type"),
                    "body": body.decode("utf-8", "replace"),
                    "verified": verified,
                    "error": None if verified else error,
                    "status": status,
                })
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
