#!/usr/bin/env python3
"""Does a word-piece bigram model's surprisal flag adversarial suffixes? (standard library only)

A perplexity filter needs a language model; this probe asks whether the cheapest one this project
could ship, a bigram model over the encoder's word pieces trained on the corpus's benign training
prompts (absolute discounting, D = 0.75, Kneser-Ney continuation probabilities), separates GCG
suffixes from benign text. The score of a prompt is its highest mean surprisal over a window of W
word pieces. Thresholds are set at 0.25% and 1% of the benign validation prompts; the rates are
reported per family of the outside pool (tooling/corpus/build_outside_pool.py).

    python3 tooling/reference/bigram_surprisal_probe.py \
        --corpus ~/.cache/curvalid/corpus/corpus.jsonl --outside ~/.cache/curvalid/corpus/outside.jsonl \
        --vocab ~/.cache/curvalid/encoders/all-minilm-l6-v2-0.1.0/vocab.txt

The tokenizer is a plain re-implementation of BERT's uncased basic + WordPiece tokenizer (no
Chinese-character or control-character details beyond what matters here).
"""
import argparse
import collections
import json
import math
import unicodedata


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_words(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, current = [], ""
    for ch in text:
        if ch.isspace():
            if current:
                words.append(current)
                current = ""
        elif is_punctuation(ch) or 0x4E00 <= ord(ch) <= 0x9FFF:
            if current:
                words.append(current)
                current = ""
            words.append(ch)
        else:
            current += ch
    if current:
        words.append(current)
    return words


class WordPiece:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.ids = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.unknown = self.ids["[UNK]"]

    def word(self, word):
        if len(word) > 100:
            return [self.unknown]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    found = self.ids[piece]
                    break
                end -= 1
            if found is None:
                return [self.unknown]
            pieces.append(found)
            start = end
        return pieces

    def __call__(self, text, limit=510):
        ids = []
        for word in basic_words(text):
            ids += self.word(word)
        return ids[:limit]


class Bigram:
    """Interpolated absolute discounting with Kneser-Ney continuation unigrams."""

    START = -1

    def __init__(self, sequences, vocabulary_size, discount=0.75):
        self.discount = discount
        self.pairs = collections.Counter()
        self.context = collections.Counter()
        self.followers = collections.defaultdict(set)
        self.predecessors = collections.defaultdict(set)
        for ids in sequences:
            sequence = [self.START] + ids
            for a, b in zip(sequence, sequence[1:]):
                self.pairs[(a, b)] += 1
                self.context[a] += 1
                self.followers[a].add(b)
                self.predecessors[b].add(a)
        self.types = len(self.pairs)
        self.vocabulary_size = vocabulary_size

    def continuation(self, b):
        return (len(self.predecessors[b]) + 0.5) / (self.types + 0.5 * self.vocabulary_size)

    def surprisals(self, ids):
        sequence = [self.START] + ids
        out = []
        for a, b in zip(sequence, sequence[1:]):
            count = self.context[a]
            if count:
                p = max(self.pairs[(a, b)] - self.discount, 0) / count
                p += self.discount * len(self.followers[a]) / count * self.continuation(b)
            else:
                p = self.continuation(b)
            out.append(-math.log(p))
        return out


def window_score(surprisals, width):
    if not surprisals:
        return 0.0
    if len(surprisals) <= width:
        return sum(surprisals) / len(surprisals)
    total = best = sum(surprisals[:width])
    for i in range(width, len(surprisals)):
        total += surprisals[i] - surprisals[i - width]
        best = max(best, total)
    return best / width


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--outside", required=True)
    parser.add_argument("--vocab", required=True)
    parser.add_argument("--windows", default="8,12,20")
    args = parser.parse_args()
    tokenize = WordPiece(args.vocab)
    with open(args.corpus, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    with open(args.outside, encoding="utf-8") as f:
        outside = [json.loads(line) for line in f]
    train = [r for r in corpus if r["label"] == "benign" and r.get("split") == "train"]
    validation = [r for r in corpus if r["label"] == "benign" and r.get("split") == "validation"]
    model = Bigram((tokenize(r["text"]) for r in train), len(tokenize.ids))
    print(f"{len(train)} benign training prompts, {sum(model.context.values())} word pieces, "
          f"{model.types} bigram types; {len(validation)} benign validation prompts")
    for width in (int(w) for w in args.windows.split(",")):
        scores = sorted(window_score(model.surprisals(tokenize(r["text"])), width) for r in validation)
        strict, loose = scores[int(len(scores) * 0.9975)], scores[int(len(scores) * 0.99)]
        print(f"\nW = {width}: thresholds {strict:.2f} (0.25% of validation) and {loose:.2f} (1%)")
        groups = collections.defaultdict(list)
        for r in outside:
            groups[(r["label"], r["family"])].append(window_score(model.surprisals(tokenize(r["text"])), width))
        for (label, family), values in sorted(groups.items()):
            above = lambda t: 100 * sum(v > t for v in values) / len(values)
            print(f"  {label:11s} {family:22s} n={len(values):4d}  {above(strict):5.1f}%  {above(loose):5.1f}%")


if __name__ == "__main__":
    main()
