#!/usr/bin/env python3
"""A legacy system's end of a Tierlink webhook: a small HTTP server that checks each delivery as
the Standard Webhooks specification says and prints the records it carries.

    pip install cryptography
    python3 ops/webhook-receiver.py --cert NODE/signing.crt [--secret whsec_…] \
        [--listen 127.0.0.1:9000] [--count N]

Each POST is checked before anything is printed: `webhook-timestamp` within 5 minutes of now;
`webhook-signature` holding a `v1a` Ed25519 signature over `{webhook-id}.{webhook-timestamp}.{body}`
by the key of the node's signing certificate (`--cert`: the node that delivers, not a key the
request names), and, with `--secret`, a `v1` HMAC-SHA256 under it too. A delivery is answered
204 once checked, 401 when a check fails. A `webhook-id` already seen is answered 204 and not
printed again: deliveries are at least once. Each record is printed as one JSON line; a record
whose `_version` is not above one already printed for its `_key` (a replay after a newer one)
is skipped.

With `--count N` the server exits 0 after N distinct deliveries; otherwise it runs until
interrupted.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TOLERANCE_SECONDS = 5 * 60


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cert", required=True, help="the delivering node's signing certificate (PEM)")
    p.add_argument("--secret", help="the webhook's whsec_ secret, to check v1 signatures too")
    p.add_argument("--listen", default="127.0.0.1:9000", help="HOST:PORT to listen on")
    p.add_argument("--count", type=int, help="exit 0 after this many distinct deliveries")
    p.add_argument("--webhook", help="accept only this webhook's deliveries (its id, wh_…): "
                   "another webhook of the same node is signed by the same key")
    return p.parse_args()


def node_key(path):
    with open(path, "rb") as f:
        key = x509.load_pem_x509_certificate(f.read()).public_key()
    if not isinstance(key, Ed25519PublicKey):
        sys.exit(f"{path}: not an Ed25519 signing certificate")
    return key


def check(headers, body, key, secret):
    """The reason a delivery fails its checks, or None."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "").split()
    if not msg_id or not stamp.isdigit():
        return "missing webhook-id or webhook-timestamp"
    if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        return f"webhook-timestamp {stamp} is more than 5 minutes off"
    content = f"{msg_id}.{stamp}.".encode() + body
    by_scheme = {}
    for s in signatures:
        scheme, _, value = s.partition(",")
        by_scheme.setdefault(scheme, []).append(value)
    if not any(ed25519_ok(key, content, v) for v in by_scheme.get("v1a", [])):
        return "no valid v1a signature by the node's signing certificate"
    if secret is not None:
        raw = base64.b64decode(secret.removeprefix("whsec_"))
        want = base64.b64encode(hmac.new(raw, content, hashlib.sha256).digest()).decode()
        if not any(hmac.compare_digest(want, v) for v in by_scheme.get("v1", [])):
            return "no valid v1 signature under the secret"
    return None


def ed25519_ok(key, content, value):
    try:
        key.verify(base64.b64decode(value), content)
        return True
    except (InvalidSignature, ValueError):
        return False


def main():
    args = parse_args()
    # Read at the first delivery: a receiver may start before the node that makes the
    # certificate (as CI starts it beside the demo).
    keys = []
    host, _, port = args.listen.rpartition(":")
    seen = set()
    versions = {}

    class Handler(BaseHTTPRequestHandler):
        # A connection that sends nothing does not hold the one-at-a-time server.
        timeout = 10

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if not keys:
                keys.append(node_key(args.cert))
            problem = check(self.headers, body, keys[0], args.secret)
            if not problem and args.webhook and not self.headers.get("webhook-id", "").startswith(
                    f"msg_{args.webhook}_"):
                problem = f"a delivery of another webhook than {args.webhook}"
            if problem:
                print(f"refused a delivery: {problem}", file=sys.stderr, flush=True)
                self.send_response(401)
                self.end_headers()
                return
            msg_id = self.headers["webhook-id"]
            if msg_id not in seen:
                seen.add(msg_id)
                for record in json.loads(body)["data"]["records"]:
                    version = record.get("_version", 0)
                    if version and version <= versions.get(record["_key"], 0):
                        continue
                    versions[record["_key"]] = version
                    print(json.dumps(record, ensure_ascii=False), flush=True)
            done = args.count is not None and len(seen) >= args.count
            self.send_response(204)
            self.end_headers()
            if done:
                # Answered first, then stopped: the node counts the delivery as made.
                self.server.shutdown_request_done = True

        def log_message(self, *_):
            pass

    # One request at a time: deliveries come one at a time per webhook anyway.
    server = HTTPServer((host, int(port)), Handler)
    server.shutdown_request_done = False
    print(f"listening on http://{host}:{port}/", file=sys.stderr, flush=True)
    while not server.shutdown_request_done:
        server.handle_request()
    return 0


if __name__ == "__main__":
    sys.exit(main())
