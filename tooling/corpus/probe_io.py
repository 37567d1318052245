"""Reading the corpus's test split and writing probe JSONL, shared by the probe builders.

Standard library only.
"""

import argparse
import json
import os
import random
import sys


def probe_parser(description):
    """An argument parser with the options every probe builder takes: --corpus, --output, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--corpus", required=True, help="the corpus JSONL (build_corpus.py's output)")
    p.add_argument("--output", required=True, help="where to write the probe JSONL")
    p.add_argument("--seed", type=int, default=5)
    return p


def read_test_records(path, tool):
    """The records of the corpus JSONL at `path` whose split is `test`, or None after printing an
    error prefixed by `tool` to stderr when the file cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        return [r for r in records if r.get("split") == "test" and "label" in r and "text" in r]
    except (OSError, ValueError) as e:
        print("%s: error: cannot read %s: %s" % (tool, path, e), file=sys.stderr)
        return None


def write_records(records, path):
    """Writes `records` as JSONL to `path`, creating its directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_or_report(records, path, tool):
    """Writes `records` as JSONL to `path` (`write_records`); True when written, else False after
    printing one error line prefixed by `tool` to stderr."""
    try:
        write_records(records, path)
        return True
    except OSError as e:
        print("%s: error: cannot write %s: %s" % (tool, path, e), file=sys.stderr)
        return False


def start(parser, argv, tool):
    """Parses `argv` with `parser` (from `probe_parser`) and reads the corpus's test split:
    `(args, rng, test records)` with `rng` seeded by --seed, or None after an error on stderr."""
    args = parser.parse_args(argv)
    test = read_test_records(args.corpus, tool)
    return None if test is None else (args, random.Random(args.seed), test)
