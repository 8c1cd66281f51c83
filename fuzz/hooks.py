"""Schemathesis hooks for scripts/fuzz: a rejected request changes nothing.

Before every POST or DELETE the database's checksum is taken; when the
answer is a 4xx, the checksum afterwards must be the same. That only holds
if nothing else writes meanwhile, so every request the API accepted for
later (202: a queued reservation or cancellation) is waited for, in
after_call, until the worker has applied it. The fuzzer runs one request at
a time (--workers 1), so the next request starts on a settled database.
"""

import json
import os
import subprocess
import time

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


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    global _before
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
