#!/usr/bin/env python3
"""A webhook receiver for the ticket reservation api, as
docs/INTEGRATION.md describes it: checks each message's Standard Webhooks
signature and timestamp, answers at once, skips a message it has already
seen (same webhook-id), and prints each event as one JSON line, marked
stale when the reservation's change arrived after a later one.

Standard library only. The secret is the endpoint's `whsec_…`, printed
once by `ticketctl webhooks add` (or POST /admin/clients/{id}/webhooks).

  WEBHOOK_SECRET=whsec_… python3 examples/webhook_receiver.py --port 8090
  ticketctl webhooks add 3 http://127.0.0.1:8090/hooks

This one keeps what it has seen in memory; a storefront records the
webhook-id and the reservation's state with the order, in one transaction.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Messages older (or further in the future) than this are refused: a
# captured request cannot be replayed later.
TOLERANCE_SECONDS = 5 * 60

# Where each state stands in a reservation's life (pending -> held ->
# confirmed, released or expired; pending -> confirmed or rejected;
# confirmed -> cancelled): a change that ranks no higher than one already
# seen arrived late, and tells nothing new.
STEP = {
    "pending": 0,
    "held": 1,
    "confirmed": 2,
    "rejected": 2,
    "released": 2,
    "expired": 2,
    "cancelled": 3,
}


def sign(secret, msg_id, timestamp, body):
    """The v1 signature of body (bytes, exactly as received)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(secret, msg_id, timestamp, signatures, body, now=None):
    """Whether body is signed with secret and recent. `signatures` is the
    webhook-signature header: space-separated `v1,<base64>` entries (more
    than one while a secret is being rotated)."""
    now = time.time() if now is None else now
    try:
        if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
            return False
    except ValueError:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(
        hmac.compare_digest(expected, entry[len("v1,"):])
        for entry in signatures.split()
        if entry.startswith("v1,")
    )


class Receiver(BaseHTTPRequestHandler):
    secret = ""
    lock = threading.Lock()
    seen_ids = set()
    # The highest step seen per reservation.
    steps = {}

    def do_POST(self):
        try:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        except ValueError:
            self.answer(400)
            return
        msg_id = self.headers.get("webhook-id", "")
        if not verify(
            self.secret,
            msg_id,
            self.headers.get("webhook-timestamp", ""),
            self.headers.get("webhook-signature", ""),
            body,
        ):
            # Not signed with this endpoint's secret, or too old.
            self.answer(401)
            return
        try:
            event = json.loads(body)
            reservation = event["data"]["reservation_id"]
            step = STEP[event["data"]["status"]]
        except (ValueError, KeyError, TypeError):
            self.answer(400)
            return
        with self.lock:
            duplicate = msg_id in self.seen_ids
            self.seen_ids.add(msg_id)
            stale = step <= self.steps.get(reservation, -1)
            if not stale:
                self.steps[reservation] = step
            if not duplicate:
                # One write per line, under the lock: print() writes the
                # text and the newline apart, so two handler threads could
                # put two events on one line.
                line = json.dumps({"webhook_id": msg_id, "stale": stale, **event})
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        # 2xx at once, duplicates included: anything else is sent again.
        self.answer(204)

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        # Events go to stdout as JSON; the request log would only repeat them.
        pass


def main():
    parser = argparse.ArgumentParser(
        description="Receives the api's webhooks and prints each event."
    )
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument(
        "--secret",
        default=os.environ.get("WEBHOOK_SECRET", ""),
        help="the endpoint's whsec_… secret (default: $WEBHOOK_SECRET)",
    )
    args = parser.parse_args()
    try:
        base64.b64decode(args.secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        args.secret = ""
    if not args.secret.startswith("whsec_"):
        sys.exit("a whsec_… secret is needed (--secret or WEBHOOK_SECRET)")
    Receiver.secret = args.secret
    server = ThreadingHTTPServer((args.bind, args.port), Receiver)
    print(f"listening on http://{args.bind}:{args.port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
