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

import sys

from probe_io import probe_parser, start, write_records

LENGTHS = (250, 500, 1000, 2000)


def main(argv=None):
    p = probe_parser(__doc__.splitlines()[0])
    p.add_argument("--attacks", type=int, default=150, help="test-split attacks to sample (default 150)")
    started = start(p, argv, "build_padding_probe")
    if started is None:
        return 1
    args, rng, test = started
    attacks = [r for r in test if r["label"] == "adversarial"]
    benign = [r["text"] for r in test if r["label"] == "benign" and 80 < len(r["text"]) < 1500]
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
    write_records(records, args.output)
    print("%d records (%d attacks) -> %s" % (len(records), len(attacks), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
