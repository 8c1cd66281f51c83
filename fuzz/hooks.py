"""Schemathesis hooks for scripts/fuzz: a rejected request changes nothing.

Before every POST or DELETE the database's checksum is taken; when the
answer is a 4xx, the checksum afterwards must be the same. That only holds
if nothing else writes meanwhile, so every request the API accepted for
later (202: a queued reservation or cancellation) is waited for, in
after_call, until the worker has applied it. The fuzzer runs one request at
a time (--workers 1), so the next request starts on a settled database.

Valid requests (positive mode) are also fitted, in before_call, to the few
rules that depend on more than the request itself, which no schema can
state (see fit_to_state): otherwise positive_data_acceptance would report
their 422s as the document promising too much.
"""

import json
import os
import subprocess
import time
from datetime import datetime

import schemathesis

MYSQL = [
    "mariadb", "--no-defaults", "-S", os.environ["FUZZ_MYSQL_SOCKET"],
    "-uroot", "-N", "-B", "tickets",
]
SETTLE_SECONDS = 15
MUTATING = {"POST", "DELETE"}

_before = None


def sql(query):
    return subprocess.run(MYSQL + ["-e", query], check=True, capture_output=True, text=True).stdout


def fingerprint():
    return sql("CHECKSUM TABLE events, reservations, users")


def status_of(reservation_id):
    hex_id = reservation_id.replace("-", "")
    if len(hex_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
        return None
    return sql(f"SELECT status FROM reservations WHERE id = UNHEX('{hex_id}')").strip() or None


# The api's default MAX_QUANTITY (a live setting, so not in the schema).
MAX_QUANTITY = 10


def instant(value):
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except (AttributeError, TypeError, ValueError):
        return None


def fit_to_state(case):
    """The rules of a valid request that the schema cannot state, because
    they relate two fields or name other data:

    - POST /events: sale_closes_at must be after sale_opens_at;
    - reserve: user_id must name an existing user (else 422), quantity is
      at most the live MAX_QUANTITY (default 10), and an Idempotency-Key
      once used stands for its first request (another one with the same
      key is refused with 422): a key is given a fresh value when it would
      stand for a different request, and kept when it replays the same one.

    Only valid (positive) cases are fitted; invalid ones stay as generated.
    """
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return
    route = (case.method.upper(), case.operation.path)
    if route == ("POST", "/events/{id}/reserve"):
        fit_reserve(case)
    if route == ("POST", "/events") and isinstance(case.body, dict):
        body = case.body
        opens, closes = instant(body.get("sale_opens_at")), instant(body.get("sale_closes_at"))
        if opens and closes and closes <= opens:
            del body["sale_closes_at"]


_fresh_keys = 0


def stored_ask(key):
    """What the Idempotency-Key `key` was first used for (every case has the
    same caller, the admin token), or None."""
    row = sql(
        "SELECT event_id, quantity, IFNULL(user_id, '') FROM reservation_requests"
        f" WHERE idempotency_key = CONVERT(UNHEX('{key.encode().hex()}') USING ascii)"
    ).rstrip("\n")
    return tuple(row.split("\t")) if row else None


def fit_reserve(case):
    global _fresh_keys
    body = case.body if isinstance(case.body, dict) else {}
    if body.get("user_id") is not None:
        user = sql("SELECT MIN(id) FROM users").strip()
        if user.isdigit():
            body["user_id"] = int(user)
        else:
            del body["user_id"]
    if isinstance(body.get("quantity"), (int, float)) and body["quantity"] > MAX_QUANTITY:
        body["quantity"] = MAX_QUANTITY
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    if name is None:
        return
    user = body.get("user_id")
    ask = (str((case.path_parameters or {}).get("id")), str(int(body.get("quantity") or 1)),
           "" if user is None else str(user))
    stored = stored_ask(headers[name].strip())
    if stored is not None and stored != ask:
        _fresh_keys += 1
        headers[name] = f"fuzz-{_fresh_keys}"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    global _before
    fit_to_state(case)
    _before = fingerprint() if case.method.upper() in MUTATING else None


@schemathesis.hook
def after_call(ctx, case, response):
    """Waits until a 202's command is applied (bounded)."""
    if response.status_code != 202:
        return
    try:
        reservation_id = json.loads(response.content)["reservation_id"]
    except (ValueError, KeyError, TypeError):
        return
    cancel = case.method.upper() == "DELETE"
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        status = status_of(reservation_id)
        if status == "cancelled" if cancel else status not in (None, "pending"):
            return
        time.sleep(0.05)
    raise AssertionError(f"reservation {reservation_id} not settled within {SETTLE_SECONDS}s")


def is_decision(response):
    """A 409 to a reserve is the worker's decision (not enough tickets), not
    a refusal of the request: by contract (DESIGN.md section 5) it is stored
    as a `rejected` reservation that can be polled and replayed."""
    try:
        return json.loads(response.content).get("status") == "rejected"
    except (ValueError, AttributeError):
        return False


@schemathesis.check
def rejected_request_changes_nothing(ctx, response, case):
    if _before is None or not 400 <= response.status_code < 500:
        return None
    if response.status_code == 409 and is_decision(response):
        return None
    after = fingerprint()
    if after != _before:
        raise AssertionError(
            f"{case.method.upper()} answered {response.status_code} but changed the database:\n"
            f"before: {_before}\nafter:  {after}"
        )
    return None
