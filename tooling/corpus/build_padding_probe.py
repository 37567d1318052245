#!/usr/bin/env python3
"""Build a padding probe: test-split attacks hidden before or after benign text.

A detector that scores the whole prompt can be evaded by surrounding an attack with ordinary
text. This script takes a seeded sample of the corpus's test-split attacks and writes, for each,
the attack alone and the attack with N characters of benign test-split prompts put before it or
after it, plus the benign padding alone at the same lengths. Every record is in the `test` split,
so `curvalid evaluate --corpus padding.jsonl` reports the share caught per family:

    unpadded            the attacks alone
    pad_before_<N>      N characters of benign text, a blank line, the attack
    pad_after_<N>       the attack, a blank line, N characters of benign text
    padding_<N>         (benign) the padding texts alone

Standard library only. Nothing here is used for training.
"""

import argparse
import json
import os
import random
import sys

LENGTHS = (250, 500, 1000, 2000)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="the corpus JSONL (build_corpus.py's output)")
    p.add_argument("--output", required=True, help="where to write the probe JSONL")
    p.add_argument("--attacks", type=int, default=150, help="test-split attacks to sample (default 150)")
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    attacks, benign = [], []
    try:
        with open(args.corpus, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r.get("split") != "test":
                    continue
                if r["label"] == "adversarial":
                    attacks.append(r)
                elif r["label"] == "benign" and 80 < len(r["text"]) < 1500:
                    benign.append(r["text"])
    except (OSError, ValueError, KeyError) as e:
        print("build_padding_probe: error: cannot read %s: %s" % (args.corpus, e), file=sys.stderr)
        return 1
    if not attacks or not benign:
        print("build_padding_probe: error: %s has no test-split attacks or benign prompts" % args.corpus,
              file=sys.stderr)
        return 1
    rng.shuffle(attacks)
    attacks = attacks[: args.attacks]

    def padding(n):
        text = ""
        while len(text) < n:
            text += rng.choice(benign) + "\n\n"
        return text[:n].strip()

    def record(text, label, family, source):
        return {"text": text, "label": label, "family": family, "source": source, "group": "",
                "split": "test", "tokens_approx": (len(text) + 3) // 4}

    records = []
    for a in attacks:
        records.append(record(a["text"], "adversarial", "unpadded", a["family"]))
        for n in LENGTHS:
            records.append(record(padding(n) + "\n\n" + a["text"], "adversarial", "pad_before_%d" % n, a["family"]))
            records.append(record(a["text"] + "\n\n" + padding(n), "adversarial", "pad_after_%d" % n, a["family"]))
    for n in LENGTHS:
        for _ in range(len(attacks)):
            records.append(record(padding(n), "benign", "padding_%d" % n, "padding"))
    for i, r in enumerate(records):
        r["group"] = "padding:%d" % i
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("%d records (%d attacks) -> %s" % (len(records), len(attacks), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
