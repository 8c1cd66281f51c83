#!/usr/bin/env python3
"""A storefront's checkout against the ticket reservation api, as
docs/INTEGRATION.md recommends it: hold the tickets, take the payment,
confirm the hold (or release it when the payment fails), with one
Idempotency-Key per purchase so that every retry is safe, Retry-After
obeyed on 429 and 503, and the waiting list when the event is sold out.

Standard library only. Prints one JSON object per step on stdout and
exits 0 when the purchase ends in a known state (confirmed, released,
sold out, waiting), 1 when the api kept refusing.

  python3 examples/storefront.py --api http://localhost:8000 --event 1 --quantity 2
  python3 examples/storefront.py --event 1 --fail-payment       # the hold is released
  python3 examples/storefront.py --event 1 --wait-list          # queue when sold out
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

# How long the storefront keeps retrying one step before it gives up.
STEP_DEADLINE_SECONDS = 60


def log(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


class Api:
    def __init__(self, base, api_key):
        self.base = base.rstrip("/")
        self.api_key = api_key

    def call(self, method, path, body=None, key=None):
        """One request; (status, JSON body, Retry-After seconds or None)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key:
            headers["Idempotency-Key"] = key
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null"), None
        except urllib.error.HTTPError as error:
            retry_after = error.headers.get("Retry-After")
            text = error.read()
            body = json.loads(text) if text else None
            return error.code, body, int(retry_after) if retry_after else None
        except (urllib.error.URLError, TimeoutError) as error:
            # No answer: the request may or may not have arrived. Safe to
            # send again, because it carries the same Idempotency-Key (or
            # is a read or an idempotent confirm/cancel).
            return 0, {"error": str(error)}, 1

    def retrying(self, method, path, body=None, key=None):
        """Sends until the answer is not a "try again" one: 429 and 503
        after Retry-After, no answer after a second, 409 "not decided
        yet" (a confirm or cancel racing its own reserve) after a moment."""
        deadline = time.monotonic() + STEP_DEADLINE_SECONDS
        while True:
            status, body_out, retry_after = self.call(method, path, body, key)
            again = status in (0, 429, 503) or (
                status == 409 and isinstance(body_out, dict) and body_out.get("type") == "/problems/conflict"
                and "not decided yet" in str(body_out.get("detail", ""))
            )
            if not again or time.monotonic() > deadline:
                return status, body_out
            log("retry", method=method, path=path, status=status, after=retry_after)
            time.sleep(retry_after or 0.2)


def decided(api, reservation):
    """A 202 answer is a promise: poll until the reservation is decided."""
    deadline = time.monotonic() + STEP_DEADLINE_SECONDS
    while reservation.get("status") == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        status, body = api.retrying("GET", f"/reservations/{reservation['reservation_id']}")
        if status == 200:
            reservation = body
    return reservation


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default="http://localhost:8000")
    parser.add_argument("--api-key", help="this storefront's API key (tk_…), if the api requires one")
    parser.add_argument("--event", type=int, required=True)
    parser.add_argument("--quantity", type=int, default=1)
    parser.add_argument("--ticket-type", type=int)
    parser.add_argument("--user", type=int, help="the buyer's user id (required by events with max_per_user)")
    parser.add_argument("--hold-seconds", type=int, default=300, help="time the buyer has to pay")
    parser.add_argument("--fail-payment", action="store_true", help="simulate a declined card")
    parser.add_argument("--wait-list", action="store_true", help="join the waiting list when sold out")
    args = parser.parse_args()
    api = Api(args.api, args.api_key)

    status, tickets = api.retrying("GET", f"/events/{args.event}/tickets")
    if status != 200:
        log("event", status=status, problem=tickets)
        return 1
    log("availability", tickets=tickets)

    # One key per purchase, made before the first try and kept for every
    # retry: the api then makes at most one reservation for it.
    key = f"checkout-{uuid.uuid4()}"
    ask = {"quantity": args.quantity, "hold": True, "hold_seconds": args.hold_seconds}
    if args.ticket_type is not None:
        ask["ticket_type"] = args.ticket_type
    if args.user is not None:
        ask["user_id"] = args.user
    status, held = api.retrying("POST", f"/events/{args.event}/reserve", ask, key)
    if status == 202:
        held = decided(api, held)
    elif status not in (200, 409):
        # 403 (sale not open or closed), 422 (a bad ask): nothing was queued.
        log("refused", status=status, problem=held)
        return 1 if status in (0, 429, 503) else 0
    log("hold", reservation=held)

    if held.get("status") != "held":
        # Rejected: sold out (or the per-user limit). Queue if asked to.
        if not args.wait_list:
            log("done", outcome="sold out", message=held.get("message"))
            return 0
        join = {"quantity": args.quantity}
        if args.ticket_type is not None:
            join["ticket_type"] = args.ticket_type
        if args.user is not None:
            join["user_id"] = args.user
        status, entry = api.retrying("POST", f"/events/{args.event}/waiting-list", join)
        log("done", outcome="waiting" if status == 201 else "sold out", status=status, entry=entry)
        return 0

    reservation_id = held["reservation_id"]
    if args.fail_payment:
        # Give the tickets back at once rather than letting the hold expire.
        status, released = api.retrying("DELETE", f"/reservations/{reservation_id}")
        log("done", outcome=released.get("status") if status == 200 else "release failed", status=status)
        return 0 if status == 200 else 1

    # Payment taken: confirm. Confirming twice is harmless, so a confirm
    # whose answer was lost is simply sent again.
    status, confirmed = api.retrying("POST", f"/reservations/{reservation_id}/confirm")
    if status == 202:
        confirmed = decided(api, confirmed)
    # 409 "expired": the buyer paid too late; refund, or offer the list.
    log("done", outcome=confirmed.get("status"), status=status, reservation=confirmed)
    return 0 if confirmed.get("status") in ("confirmed", "expired") else 1


if __name__ == "__main__":
    sys.exit(main())
