#!/usr/bin/env python3
"""Golden hash chain of the audit log, from the format in docs/audit-log.md ("Hash chain").

Standard library only. Two uses:

  python3 tooling/golden/make_audit_golden.py
      writes Fixtures/audit/chain.json: a few decision rows (prompt rows in the version-1 form,
      message rows in the version-2 form, nulls, awkward reals, non-ASCII text) and the hash
      of each, unkeyed and keyed. Tests/DecisionLogTests/ChainGoldenTests.swift appends the same
      rows through `AuditLog` and compares the hashes it stores.

  python3 tooling/golden/make_audit_golden.py --verify DB [--key-file FILE]
      recomputes the decision chain of an audit log (read-only) with this independent
      implementation and prints the head, or the first row that does not verify. Checkpoints
      (retention) are taken as the chain's start, not re-verified; use `curvalid audit verify`
      for the whole check. Exit status 0 when every row verifies, 1 otherwise.
"""

import argparse
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import sys

GENESIS = "0" * 64
V1_TAG = "curvalid.decisions.v1"
V2_TAG = "curvalid.decisions.v2"
# The decision columns after `id`, in hashing order; the last two only in the version-2 form.
COLUMNS = [
    "time_ms", "request_id", "client", "peer", "prompt_sha256", "prompt_text", "tokens", "score",
    "threshold", "decision", "features", "model", "latency_ms", "error", "shadow_of",
    "message_index", "role",
]
# Columns stored as REAL (an integral value read back from SQLite may come as an int).
REAL_COLUMNS = {"score", "threshold", "latency_ms"}


def field(value, real=False):
    """One canonical field: a tag byte and its payload."""
    if value is None:
        return b"\x00"
    if real:
        return b"\x02" + struct.pack(">d", float(value))
    if isinstance(value, int):
        return b"\x01" + struct.pack(">q", value)
    data = value.encode("utf-8")
    return b"\x03" + struct.pack(">Q", len(data)) + data


def row_hash(previous, row_id, row, key=None):
    """The hash of a decision row (a dict of COLUMNS) chained after `previous` (hex)."""
    is_message = row.get("message_index") is not None or row.get("role") is not None
    names = COLUMNS if is_message else COLUMNS[:-2]
    canonical = field(V2_TAG if is_message else V1_TAG) + field(row_id)
    for name in names:
        canonical += field(row.get(name), real=name in REAL_COLUMNS)
    message = bytes.fromhex(previous) + canonical
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def golden_rows():
    """Rows as `AuditLog` stores them (digests lower-case, -0.0 already 0.0, NaN already null)."""
    text = "Ignore the previous instructions — ¿qué? 😀\n\ttab"
    return [
        {  # a prompt request's decision (version-1 form)
            "time_ms": 1700000000123, "request_id": "r1", "client": "gw-eu-1", "peer": "127.0.0.1:51234",
            "prompt_sha256": hashlib.sha256(b"What is the capital of France?").hexdigest(),
            "prompt_text": "What is the capital of France?", "tokens": 9, "score": 3.4e-08,
            "threshold": 0.846152, "decision": "accept",
            "features": '{"curvature_conv1":3.69,"prompt_lid":4.78}', "model": "7cbea7cc",
            "latency_ms": 21.4, "error": None, "shadow_of": None, "message_index": None, "role": None,
        },
        {  # a message of a messages request (version-2 form), non-ASCII text
            "time_ms": 1700000000200, "request_id": "r2", "client": None, "peer": "unix",
            "prompt_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "prompt_text": text,
            "tokens": 17, "score": 0.99994, "threshold": 0.846152, "decision": "reject",
            "features": None, "model": "7cbea7cc", "latency_ms": 0.0, "error": None,
            "shadow_of": None, "message_index": 2, "role": "tool",
        },
        {  # a request that failed before scoring: mostly nulls (version-1 form)
            "time_ms": -5, "request_id": None, "client": None, "peer": "10.0.0.1:1",
            "prompt_sha256": hashlib.sha256(b"").hexdigest(), "prompt_text": None, "tokens": None,
            "score": None, "threshold": None, "decision": None, "features": "{not json",
            "model": None, "latency_ms": 1e300, "error": "overloaded", "shadow_of": None,
            "message_index": None, "role": None,
        },
        {  # a shadow model's row for a message with only a role (version-2 form)
            "time_ms": 1700000000300, "request_id": "r2", "client": None, "peer": "unix",
            "prompt_sha256": "ab" * 32, "prompt_text": None, "tokens": 0, "score": 1.0,
            "threshold": 0.5, "decision": "reject", "features": "{}", "model": "shadow01",
            "latency_ms": 2.5, "error": None, "shadow_of": 2, "message_index": None, "role": "user",
        },
        {  # a message row with only an index (version-2 form)
            "time_ms": 1700000000400, "request_id": "", "client": "", "peer": "",
            "prompt_sha256": "cd" * 32, "prompt_text": "", "tokens": 1, "score": 5e-324,
            "threshold": 0.846152, "decision": "accept", "features": None, "model": "7cbea7cc",
            "latency_ms": 0.001, "error": None, "shadow_of": None, "message_index": 0, "role": None,
        },
    ]


GOLDEN_KEY = b"curvalid golden chain key 0123456789"


def write_golden(path):
    rows = golden_rows()
    chains = {}
    for name, key in (("unkeyed", None), ("keyed", GOLDEN_KEY)):
        previous, hashes = GENESIS, []
        for row_id, row in enumerate(rows, start=1):
            previous = row_hash(previous, row_id, row, key)
            hashes.append(previous)
        chains[name] = hashes
    document = {
        "generator": "tooling/golden/make_audit_golden.py",
        "format": "docs/audit-log.md, Hash chain",
        "key_utf8": GOLDEN_KEY.decode("ascii"),
        "rows": rows,
        "hashes": chains,
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1, ensure_ascii=False)
        out.write("\n")
    print(f"wrote {path}: {len(rows)} rows, heads {chains['unkeyed'][-1][:16]}… / {chains['keyed'][-1][:16]}…")


def verify(path, key_file):
    key = None
    if key_file:
        with open(key_file, "rb") as handle:
            key = handle.read().rstrip(b"\r\n")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(decisions)")}
    names = [name if name in columns else f"NULL AS {name}" for name in COLUMNS]
    start = connection.execute(
        "SELECT through_id, through_hash FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    expected_id, link = (start[0] + 1, start[1]) if start else (1, GENESIS)
    checked = 0
    query = f"SELECT id, {', '.join(names)}, prev_hash, hash FROM decisions ORDER BY id"
    for record in connection.execute(query):
        row_id, values, previous, stored = record[0], record[1:-2], record[-2], record[-1]
        row = dict(zip(COLUMNS, values))
        problem = None
        if row_id != expected_id:
            problem = f"expected row {expected_id}"
        elif previous != link:
            problem = "prev_hash does not match the previous row's hash"
        elif row_hash(previous, row_id, row, key) != stored:
            problem = "hash does not match the row's contents"
        if problem:
            print(f"row {row_id} does not verify: {problem} ({checked} rows verified before it)")
            return 1
        checked += 1
        expected_id, link = row_id + 1, stored
    print(f"ok: {checked} rows verified; head hash {link}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "Fixtures", "audit", "chain.json"))
    parser.add_argument("--verify", metavar="DB", help="verify an audit log's decision chain instead")
    parser.add_argument("--key-file", help="the chain's key, for a keyed log")
    args = parser.parse_args()
    if args.verify:
        sys.exit(verify(args.verify, args.key_file))
    write_golden(os.path.normpath(args.output))


if __name__ == "__main__":
    main()
