#!/usr/bin/env python3
"""A webhook receiver that checks signatures the way Sentry integrations do.

It accepts a POST only when `Sentry-Hook-Signature` is the HMAC-SHA256, in
lowercase hex, under one of the secrets in --secret-file (one per line, read
again on every request) of

  * the exact body bytes, and
  * the body parsed and dumped again with json.dumps(body, separators=(',', ':')),
    which is what Sentry's example integration backend hashes.

Each request prints one JSON line on stdout: what arrived and whether it
verified. Used by scripts/quickstart.sh and by Rotor's tests; standard
library only.

Usage: webhook_receiver.py [--port 0] --secret-file FILE
"""
import argparse
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret-file", required=True)
    args = parser.parse_args()

    def secrets() -> list:
        try:
            with open(args.secret_file, encoding="utf-8") as f:
                return [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            sig = self.headers.get("Sentry-Hook-Signature", "")
            try:
                body = json.loads(raw)
                redumped = json.dumps(body, separators=(",", ":")).encode("utf-8")
            except ValueError:
                body, redumped = None, b""

            def signed(data: bytes) -> bool:
                return any(
                    hmac.compare_digest(
                        hmac.new(s.encode("utf-8"), data, hashlib.sha256).hexdigest(), sig
                    )
                    for s in secrets()
                )

            ok = body is not None and signed(raw) and signed(redumped)
            line = {
                "verified": ok,
                "resource": self.headers.get("Sentry-Hook-Resource"),
                "requestId": self.headers.get("Request-ID"),
                "timestamp": self.headers.get("Sentry-Hook-Timestamp"),
                "action": body.get("action") if isinstance(body, dict) else None,
                "body": body,
            }
            print(json.dumps(line), flush=True)
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Hook)
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
