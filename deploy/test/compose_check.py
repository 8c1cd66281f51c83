#!/usr/bin/env python3
"""Load driver and database checks of scripts/compose-test (stdlib only).

    compose_check.py load --base-url URL --event ID --requests N --concurrency C
                          [--rate R] [--max-quantity Q] [--fault AT:LABEL:CMD ...]
                          --out results.json
        Sends N reservations (random quantity 1..Q, each with its own
        Idempotency-Key) with C threads, at most R started per second.  A 503
        or 429 (refused, nothing decided), a 502/504 from the proxy (the api
        replica died mid-request) or a connection error is retried with the
        same key after Retry-After; a 202 is polled at
        GET /reservations/{id} until decided.  When AT requests have been
        started, CMD runs (shell) in the background: fault injection.
        Every request ends decided (200 confirmed / 409 rejected) or the run
        fails.

    compose_check.py verify --results results.json --event ID --sql CMD
        Checks, from the database (CMD runs one SQL statement given on stdin
        and prints tab-separated rows):
          0 <= available <= capacity,
          available + sum(quantity of confirmed) == capacity,
          no reservation of the event left pending,
          every 200's reservation_id is a confirmed row with its quantity,
          every 409's reservation_id has no confirmed row,
          the confirmed quantities the clients were told add up to what the
          database sold.

    compose_check.py summary --results results.json
        One line: requests, duration, final answers, refusals, faults.

    compose_check.py outage --results results.json --label LABEL
        For the fault LABEL (e.g. a broker restart): how many 503s the api
        answered and how long after the fault's command returned the first
        request went through without a refusal.  Fails when there was no 503
        or no recovery.

    compose_check.py windows --results results.json
        Between one fault and the next: requests started, how many were
        refused at least once (retried), answered 202 (polled), and the
        slowest time to a final answer.  Shows what each fault cost.

    compose_check.py invariants --sql CMD
        The two invariants for every event of a database (a restored dump).

    compose_check.py dump-counts FILE
        Rows per table in a mysqldump file (counts the tuples of its INSERT
        statements), as JSON.

    compose_check.py table-counts --sql CMD TABLE...
        Rows per table in the database, as JSON.
"""

import argparse
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

REQUEST_DEADLINE_S = 120.0
HTTP_TIMEOUT_S = 15.0


def http(method, url, body=None, headers=None):
    """(status, parsed JSON or text, headers); (None, error, {}) on a
    connection error."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    except (urllib.error.URLError, OSError) as e:
        return None, str(e), {}
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, payload, hdrs


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.started = 0
        self.refused = {}  # status (503/429/conn) -> count
        self.refused_at = []  # seconds since start of each refusal

    def refuse(self, what, t):
        with self.lock:
            self.refused[what] = self.refused.get(what, 0) + 1
            self.refused_at.append(round(t, 2))


def one_reservation(args, i, quantity, stats, t0):
    key = f"{args.key_prefix}-{i}"
    url = f"{args.base_url}/events/{args.event}/reserve"
    rec = {"i": i, "key": key, "quantity": quantity, "attempts": 0, "refusals": 0,
           "started": round(time.monotonic() - t0, 3)}
    deadline = time.monotonic() + REQUEST_DEADLINE_S
    while True:
        rec["attempts"] += 1
        status, body, hdrs = http("POST", url, {"quantity": quantity}, {"Idempotency-Key": key})
        now = time.monotonic()
        if status in (200, 409):
            rec.update(http_status=status, reservation_id=body["reservation_id"],
                       status=body["status"], answered=round(now - t0, 3))
            return rec
        if status == 202:
            rid = body["reservation_id"]
            rec["got_202"] = True
            while time.monotonic() < deadline:
                st, b, _ = http("GET", f"{args.base_url}/reservations/{rid}")
                if st == 200 and b.get("status") in ("confirmed", "rejected"):
                    rec.update(http_status=200 if b["status"] == "confirmed" else 409,
                               reservation_id=rid, status=b["status"],
                               answered=round(time.monotonic() - t0, 3))
                    return rec
                time.sleep(0.2)
            rec.update(error=f"202 for {rid} not decided within {REQUEST_DEADLINE_S}s")
            return rec
        # 502/504: the proxy lost the api replica mid-request (killed): the
        # reservation may or may not be queued, and the same key finds it.
        if status in (503, 429, 502, 504) or status is None:
            what = "conn" if status is None else str(status)
            stats.refuse(what, now - t0)
            rec["refusals"] += 1
            if now >= deadline:
                rec.update(error=f"still refused ({what}) after {REQUEST_DEADLINE_S}s: {body}")
                return rec
            try:
                wait = float(hdrs.get("Retry-After", "0.5"))
            except ValueError:
                wait = 0.5
            time.sleep(min(max(wait, 0.2), 1.0))
            continue
        rec.update(error=f"unexpected HTTP {status}: {body}")
        return rec


def cmd_load(args):
    rng = random.Random(args.seed)
    quantities = [rng.randint(1, args.max_quantity) for _ in range(args.requests)]
    faults = []
    for f in args.fault or []:
        at, label, cmd = f.split(":", 2)
        faults.append({"at": int(at), "label": label, "cmd": cmd})
    stats = Stats()
    t0 = time.monotonic()
    fault_log = []
    fault_threads = []

    def fire(fault):
        ts = time.monotonic() - t0
        p = subprocess.run(fault["cmd"], shell=True, capture_output=True, text=True)
        fault_log.append({"label": fault["label"], "at_request": fault["at"],
                          "t": round(ts, 2), "took": round(time.monotonic() - t0 - ts, 2),
                          "rc": p.returncode, "output": (p.stdout + p.stderr).strip()[-500:]})

    results = [None] * args.requests
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = []
        for i in range(args.requests):
            if args.rate:
                delay = t0 + i / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            for fault in faults:
                if fault["at"] == i:
                    th = threading.Thread(target=fire, args=(fault,))
                    th.start()
                    fault_threads.append(th)
            futures.append(pool.submit(one_reservation, args, i, quantities[i], stats, t0))
        for i, fut in enumerate(futures):
            results[i] = fut.result()
    for th in fault_threads:
        th.join()
    elapsed = time.monotonic() - t0

    codes = {}
    for r in results:
        k = str(r.get("http_status", "error"))
        codes[k] = codes.get(k, 0) + 1
    errors = [r for r in results if "error" in r]
    summary = {
        "requests": args.requests, "elapsed_s": round(elapsed, 2),
        "final": codes, "refusals": stats.refused,
        "first_refusal_s": min(stats.refused_at) if stats.refused_at else None,
        "last_refusal_s": max(stats.refused_at) if stats.refused_at else None,
        "polled_202": sum(1 for r in results if r.get("got_202")),
        "confirmed_quantity": sum(r["quantity"] for r in results if r.get("http_status") == 200),
        "faults": fault_log, "errors": len(errors),
    }
    with open(args.out, "w") as fh:
        json.dump({"summary": summary, "results": results}, fh)
    print(json.dumps(summary, indent=1))
    for r in errors[:10]:
        print(f"ERROR request {r['i']}: {r['error']}", file=sys.stderr)
    for fl in fault_log:
        if fl["rc"] != 0:
            print(f"ERROR fault {fl['label']} failed: {fl['output']}", file=sys.stderr)
    return 1 if errors or any(fl["rc"] != 0 for fl in fault_log) else 0


def load_results(path):
    with open(path) as fh:
        return json.load(fh)


def cmd_summary(args):
    s = load_results(args.results)["summary"]
    faults = ", ".join(f"{f['label']} at {f['t']}s (took {f['took']}s)" for f in s["faults"])
    print(f"{s['requests']} requests in {s['elapsed_s']}s; final answers {s['final']}; "
          f"202s polled {s['polled_202']}; refusals retried {s['refusals'] or 0}"
          + (f"; faults: {faults}" if faults else ""))
    return 0


def cmd_outage(args):
    d = load_results(args.results)
    s, res = d["summary"], d["results"]
    fault = next((f for f in s["faults"] if f["label"] == args.label), None)
    if fault is None:
        print(f"no fault {args.label} in {args.results}")
        return 1
    end = fault["t"] + fault["took"]
    n503 = s["refusals"].get("503", 0)
    clean_after = sorted(r["started"] for r in res
                         if r["started"] >= end and r["refusals"] == 0 and "error" not in r)
    ok = n503 > 0 and bool(clean_after)
    recovered = f"{clean_after[0] - end:.1f}s" if clean_after else "never"
    print(f"{args.label}: command at {fault['t']}s took {fault['took']}s; api answered 503 "
          f"{n503} times (from {s['first_refusal_s']}s to {s['last_refusal_s']}s), "
          f"first request without refusal {recovered} after the command returned"
          + ("" if ok else " -- FAILED: expected 503s during the outage and a recovery"))
    return 0 if ok else 1


def cmd_windows(args):
    d = load_results(args.results)
    faults = sorted(d["summary"]["faults"], key=lambda f: f["t"])
    bounds = [("before the faults", 0.0)] + [(f["label"], f["t"]) for f in faults]
    for i, (label, start) in enumerate(bounds):
        end = bounds[i + 1][1] if i + 1 < len(bounds) else float("inf")
        rs = [r for r in d["results"] if start <= r["started"] < end and "error" not in r]
        if not rs:
            continue
        slowest = max(r["answered"] - r["started"] for r in rs)
        print(f"from {label} ({start:.1f}s): {len(rs)} requests, "
              f"{sum(1 for r in rs if r['refusals'])} refused then retried, "
              f"{sum(1 for r in rs if r.get('got_202'))} answered 202 then polled, "
              f"slowest answer {slowest:.1f}s")
    return 0


def sql_rows(sql_cmd, query):
    p = subprocess.run(sql_cmd, shell=True, input=query, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"SQL failed ({p.returncode}): {p.stderr.strip()}\n{query}")
    return [line.split("\t") for line in p.stdout.splitlines() if line.strip()]


def event_state(sql_cmd, event):
    rows = sql_rows(sql_cmd, f"""
        SELECT e.capacity, e.available,
               COALESCE((SELECT SUM(r.quantity) FROM reservations r
                         WHERE r.event_id = e.id AND r.status = 'confirmed'), 0),
               (SELECT COUNT(*) FROM reservations r
                WHERE r.event_id = e.id AND r.status NOT IN ('confirmed', 'rejected', 'cancelled'))
        FROM events e WHERE e.id = {int(event)}""")
    if not rows:
        raise SystemExit(f"event {event} not found")
    return tuple(int(x) for x in rows[0])


def cmd_verify(args):
    with open(args.results) as fh:
        results = json.load(fh)["results"]
    problems = []
    # Let in-flight commands settle (nothing should be pending for long).
    deadline = time.monotonic() + args.settle
    while True:
        capacity, available, sold, pending = event_state(args.sql, args.event)
        if pending == 0 or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if not 0 <= available <= capacity:
        problems.append(f"available {available} outside [0, {capacity}]")
    if available + sold != capacity:
        problems.append(f"available {available} + confirmed {sold} != capacity {capacity}")
    if pending:
        problems.append(f"{pending} reservations still undecided after {args.settle}s")

    rows = sql_rows(args.sql, f"SELECT LOWER(HEX(id)), status, quantity FROM reservations "
                              f"WHERE event_id = {int(args.event)}")
    db = {r[0]: (r[1], int(r[2])) for r in rows}
    told_confirmed = 0
    for r in results:
        if "error" in r:
            problems.append(f"request {r['i']} has no final answer: {r['error']}")
            continue
        rid = uuid.UUID(r["reservation_id"]).hex
        row = db.get(rid)
        if r["http_status"] == 200:
            told_confirmed += r["quantity"]
            if row is None or row[0] != "confirmed":
                problems.append(f"200 for {r['reservation_id']} but database has {row}")
            elif row[1] != r["quantity"]:
                problems.append(f"200 for {r['reservation_id']} quantity {r['quantity']} "
                                f"but database has {row[1]}")
        elif r["http_status"] == 409:
            if row is not None and row[0] == "confirmed":
                problems.append(f"409 for {r['reservation_id']} but the row is confirmed")
    if told_confirmed != sold:
        problems.append(f"clients were told {told_confirmed} tickets confirmed, database sold {sold}")
    statuses = {}
    for st, _ in db.values():
        statuses[st] = statuses.get(st, 0) + 1
    print(json.dumps({"event": args.event, "capacity": capacity, "available": available,
                      "confirmed_quantity": sold, "rows_by_status": statuses,
                      "told_confirmed_quantity": told_confirmed,
                      "invariants": "ok" if not problems else "VIOLATED"}))
    for p in problems[:20]:
        print(f"VIOLATION: {p}", file=sys.stderr)
    return 1 if problems else 0


def cmd_invariants(args):
    rows = sql_rows(args.sql, """
        SELECT e.id, e.capacity, e.available,
               COALESCE(SUM(CASE WHEN r.status = 'confirmed' THEN r.quantity END), 0)
        FROM events e LEFT JOIN reservations r ON r.event_id = e.id
        GROUP BY e.id, e.capacity, e.available ORDER BY e.id""")
    problems = []
    for ev, cap, avail, sold in ([int(x) for x in row] for row in rows):
        if not 0 <= avail <= cap:
            problems.append(f"event {ev}: available {avail} outside [0, {cap}]")
        if avail + sold != cap:
            problems.append(f"event {ev}: available {avail} + confirmed {sold} != capacity {cap}")
    print(json.dumps({"events": len(rows), "invariants": "ok" if not problems else "VIOLATED"}))
    for p in problems:
        print(f"VIOLATION: {p}", file=sys.stderr)
    return 1 if problems or not rows else 0


INSERT_RE = re.compile(r"^INSERT INTO `([^`]+)` (?:\([^)]*\) )?VALUES")


class TupleCounter:
    """Counts the top-level (...) groups of one INSERT's VALUES list, fed in
    pieces (MySQL writes a statement on one line, MariaDB >= 10.11.? one row
    per line); done once the closing ';' is seen."""

    def __init__(self):
        self.n = self.depth = 0
        self.in_str = self.esc = self.done = False

    def feed(self, text):
        for ch in text:
            if self.in_str:
                if self.esc:
                    self.esc = False
                elif ch == "\\":
                    self.esc = True
                elif ch == "'":
                    self.in_str = False
            elif ch == "'":
                self.in_str = True
            elif ch == "(":
                if self.depth == 0:
                    self.n += 1
                self.depth += 1
            elif ch == ")":
                self.depth -= 1
            elif ch == ";" and self.depth == 0:
                self.done = True
                return


def cmd_dump_counts(args):
    counts = {}
    table, counter = None, None
    with open(args.file, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if counter is not None:
                counter.feed(line)
            else:
                m = re.match(r"^CREATE TABLE `([^`]+)`", line)
                if m:
                    counts.setdefault(m.group(1), 0)
                    continue
                m = INSERT_RE.match(line)
                if not m:
                    continue
                table, counter = m.group(1), TupleCounter()
                counter.feed(line[m.end():])
            if counter.done:
                counts[table] = counts.get(table, 0) + counter.n
                table, counter = None, None
    if counter is not None:
        raise SystemExit(f"unterminated INSERT INTO {table} in {args.file}")
    print(json.dumps(counts, sort_keys=True))
    return 0


def cmd_table_counts(args):
    counts = {}
    for t in args.tables:
        if not re.fullmatch(r"[A-Za-z0-9_]+", t):
            raise SystemExit(f"bad table name {t}")
        counts[t] = int(sql_rows(args.sql, f"SELECT COUNT(*) FROM `{t}`")[0][0])
    print(json.dumps(counts, sort_keys=True))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("--base-url", required=True)
    p.add_argument("--event", type=int, required=True)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--rate", type=float, default=0, help="requests started per second (0: no limit)")
    p.add_argument("--max-quantity", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--key-prefix", default=f"ct-{uuid.uuid4().hex[:8]}")
    p.add_argument("--fault", action="append", help="AT:LABEL:SHELL-COMMAND")
    p.add_argument("--out", required=True)
    p = sub.add_parser("verify")
    p.add_argument("--results", required=True)
    p.add_argument("--event", type=int, required=True)
    p.add_argument("--sql", required=True)
    p.add_argument("--settle", type=float, default=60)
    p = sub.add_parser("summary")
    p.add_argument("--results", required=True)
    p = sub.add_parser("outage")
    p.add_argument("--results", required=True)
    p.add_argument("--label", required=True)
    p = sub.add_parser("windows")
    p.add_argument("--results", required=True)
    p = sub.add_parser("invariants")
    p.add_argument("--sql", required=True)
    p = sub.add_parser("dump-counts")
    p.add_argument("file")
    p = sub.add_parser("table-counts")
    p.add_argument("--sql", required=True)
    p.add_argument("tables", nargs="+")
    args = ap.parse_args()
    return {"load": cmd_load, "verify": cmd_verify, "invariants": cmd_invariants,
            "summary": cmd_summary, "outage": cmd_outage, "windows": cmd_windows,
            "dump-counts": cmd_dump_counts, "table-counts": cmd_table_counts}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
