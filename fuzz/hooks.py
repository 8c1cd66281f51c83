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
    return sql("CHECKSUM TABLE events, reservations, users, webhook_endpoints, webhook_deliveries")


def status_of(reservation_id):
    hex_id = reservation_id.replace("-", "")
    if len(hex_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
        return None
    return sql(f"SELECT status FROM reservations WHERE id = UNHEX('{hex_id}')").strip() or None


# The api's default MAX_QUANTITY (a live setting, so not in the schema).
MAX_QUANTITY = 10
# The live MAX_HOLD_SECONDS and DEFAULT_HOLD_SECONDS defaults.
MAX_HOLD_SECONDS = 900
DEFAULT_HOLD_SECONDS = 600


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
      stand for a different request, and kept when it replays the same one;
      hold_seconds comes with "hold": true and is at most the live
      MAX_HOLD_SECONDS (900); an event with ticket types needs one of its
      own (ticket_type), an event without refuses one; an event with a
      per-user limit needs a user_id;
    - POST /events/{id}/ticket-types: quota_id must be one of the event's,
      and its sale window closes after it opens, as for events;
    - POST /admin/clients/{id}/webhooks: url must be an absolute http(s)
      URL without credentials;
    - POST /events/{id}/waiting-list: ticket_type and user_id as for
      reserve; an event with a per-user limit also caps the quantity, so
      such a case goes to event 1, which has none.

    Only valid (positive) cases are fitted; invalid ones stay as generated.
    """
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return
    route = (case.method.upper(), case.operation.path)
    if route in (("POST", "/events/{id}/reserve"), ("POST", "/events/{id}/waiting-list")):
        # No body (or null) is one ticket of nothing in particular; the
        # rules above may need fields, so such a case gets an empty object.
        if not isinstance(case.body, dict):
            case.body = {}
            case.media_type = "application/json"
    if route == ("POST", "/events/{id}/reserve"):
        fit_reserve(case)
    if route == ("POST", "/events/{id}/ticket-types") and isinstance(case.body, dict):
        fit_window(case.body)
        if case.body.get("quota_id") is not None:
            quota = sql(
                f"SELECT MIN(id) FROM quotas WHERE event_id = {event_of(case)}"
            ).strip()
            if quota.isdigit():
                case.body["quota_id"] = int(quota)
            else:
                del case.body["quota_id"]
    if route == ("POST", "/events/{id}/waiting-list"):
        if terms_of(event_of(case))[0]:
            case.path_parameters["id"] = 1
        fit_type(case, case.body)
        fit_user(case.body)
        if isinstance(case.body.get("quantity"), (int, float)):
            case.body["quantity"] = min(case.body["quantity"], MAX_QUANTITY)
    if route == ("POST", "/events") and isinstance(case.body, dict):
        fit_window(case.body)
    if route == ("POST", "/admin/clients/{id}/webhooks") and isinstance(case.body, dict):
        # Any string of the right length is valid to the schema; the api
        # also needs an absolute http(s) URL, which no schema keyword can
        # say exactly as the URL standard parses it. Port 9 (discard):
        # nothing listens, so deliveries fail and are retried meanwhile.
        case.body["url"] = "http://127.0.0.1:9/fuzz"


def fit_window(body):
    """A sale window (an event's or a ticket type's) closes after it opens."""
    opens, closes = instant(body.get("sale_opens_at")), instant(body.get("sale_closes_at"))
    if opens and closes and closes <= opens:
        del body["sale_closes_at"]


def fit_user(body):
    """user_id, when given, names an existing user (the first one)."""
    if body.get("user_id") is None:
        return
    user = sql("SELECT MIN(id) FROM users").strip()
    if user.isdigit():
        body["user_id"] = int(user)
    else:
        del body["user_id"]


_fresh_keys = 0


def stored_ask(key):
    """What the Idempotency-Key `key` was first used for (every case has the
    same caller, the admin token), or None."""
    row = sql(
        "SELECT event_id, quantity, IFNULL(user_id, ''), IFNULL(hold_seconds, ''),"
        " IFNULL(ticket_type_id, '') FROM reservation_requests"
        f" WHERE idempotency_key = CONVERT(UNHEX('{key.encode().hex()}') USING ascii)"
    ).rstrip("\n")
    return tuple(row.split("\t")) if row else None


def event_of(case):
    """The event id in the case's path, as an integer (0 if none)."""
    try:
        return int((case.path_parameters or {}).get("id"))
    except (TypeError, ValueError):
        return 0


def terms_of(event):
    """(has a per-user limit, its first ticket type or None)."""
    row = sql(
        "SELECT IFNULL(max_per_user, ''), "
        f"(SELECT IFNULL(MIN(id), '') FROM ticket_types WHERE event_id = {event}) "
        f"FROM events WHERE id = {event}"
    ).rstrip("\n")
    if not row:
        return (False, None)
    limit, kind = (row.split("\t") + ["", ""])[:2]
    return (limit != "", int(kind) if kind.isdigit() else None)


def fit_type(case, body):
    """ticket_type: one of the event's types when it has some, else none."""
    kind = terms_of(event_of(case))[1]
    if kind is None:
        body.pop("ticket_type", None)
    else:
        body["ticket_type"] = kind


def fit_reserve(case):
    global _fresh_keys
    body = case.body
    limited = terms_of(event_of(case))[0]
    if limited and body.get("user_id") is None:
        if not sql("SELECT MIN(id) FROM users").strip().isdigit():
            sql("INSERT IGNORE INTO users (email, name) VALUES ('fuzz@example.com', 'Fuzz')")
        body["user_id"] = 0
    fit_type(case, body)
    if body.get("hold_seconds") is not None:
        body["hold"] = True
        if isinstance(body["hold_seconds"], (int, float)):
            body["hold_seconds"] = min(body["hold_seconds"], MAX_HOLD_SECONDS)
    fit_user(body)
    if isinstance(body.get("quantity"), (int, float)) and body["quantity"] > MAX_QUANTITY:
        body["quantity"] = MAX_QUANTITY
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    if name is None:
        return
    user = body.get("user_id")
    hold = body.get("hold_seconds")
    if body.get("hold") is True and hold is None:
        hold = DEFAULT_HOLD_SECONDS
    kind = body.get("ticket_type")
    ask = (str((case.path_parameters or {}).get("id")), str(int(body.get("quantity") or 1)),
           "" if user is None else str(user),
           "" if not body.get("hold") or hold is None else str(int(hold)),
           "" if kind is None else str(kind))
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
