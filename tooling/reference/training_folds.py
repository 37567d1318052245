#!/usr/bin/env python3
"""Grouped K-fold corpora over the corpus's training split (standard library only).

Fold k's corpus keeps the validation split as it is, drops the real test split, and marks the
training records of fold k as `"split": "test"`, so that `curvalid train` on it trains on the
other folds, calibrates on the usual validation prompts, and reports its test-split figures on
fold k. A record's fold is the SHA-256 of its group (its text when it has none) modulo K, so
all fillings of one template stay in one fold, as the corpus builder keeps them on one side of
its own split.

    python3 tooling/reference/training_folds.py --corpus ~/.cache/curvalid/corpus/corpus.jsonl \
        --output-dir /tmp/folds
    for k in 0 1 2 3 4; do
      .build/release/curvalid train --corpus /tmp/folds/fold$k.jsonl --preset default \
          --output /tmp/folds/m$k.safetensors      # last line: fold k's accuracy
      .build/release/curvalid evaluate --corpus /tmp/folds/fold$k.jsonl --model /tmp/folds/m$k.safetensors
    done

What it measured is in docs/evaluation.md ("The in-distribution goal").
"""

import argparse
import hashlib
import json
import os
import sys
from collections import Counter


def fold_of(record, folds):
    key = record.get("group") or record["text"]
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % folds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="corpus.jsonl from tooling/corpus/build_corpus.py")
    parser.add_argument("--output-dir", required=True, help="where fold0.jsonl … are written")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    args = parser.parse_args()
    if args.folds < 2:
        sys.exit("training_folds: --folds must be at least 2")
    try:
        with open(args.corpus, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError) as error:
        sys.exit("training_folds: cannot read %s: %s" % (args.corpus, error))
    os.makedirs(args.output_dir, exist_ok=True)
    held = Counter()
    for k in range(args.folds):
        path = os.path.join(args.output_dir, "fold%d.jsonl" % k)
        with open(path, "w", encoding="utf-8") as out:
            for record in records:
                split = record.get("split")
                if split == "test" or split is None:
                    continue
                if split == "train" and fold_of(record, args.folds) == k:
                    record = dict(record, split="test")
                    held[(k, record["label"])] += 1
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        print("%s: fold %d holds %d benign, %d adversarial, %d harmful training records"
              % (path, k, held[(k, "benign")], held[(k, "adversarial")], held[(k, "harmful")]))


if __name__ == "__main__":
    main()
