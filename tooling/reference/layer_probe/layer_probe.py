#!/usr/bin/env python3
"""Linear probe: does the mean-pooled hidden state of a lower encoder layer carry attack signal
that the last layer's lacks? (issue 6, "several encoder layers").

Reads the vectors `main.swift` in this folder writes (rows of [L6 | L1 | L3] means) for the
corpus and, optionally, the outside pool, and for each feature set fits an L2-regularised
logistic regression (standardised inputs, classes weighted equally, L-BFGS) on the training
split's benign and adversarial records (harmful ones are left out, as in training):

- grouped test split: ROC-AUC, TPR / FPR / accuracy at the threshold that flags 1% of the
  validation split's benign prompts, and a length-matched ROC-AUC (attacks and benign prompts in
  the same character-length quintile of the attacks);
- leave-one-family-out: for each of the nine attack families, trained without it, the share of
  its records flagged at that fold's 1% validation threshold; macro over all nine, over the six
  with at least 14 records, and prompt injection alone; the test split's benign FPR (mean);
- outside pool (trained on the corpus): ROC-AUC, macro TPR and benign FPR at the corpus
  threshold, and macro TPR at the threshold that flags 1% of the outside benign prompts.

With `--mlp-seeds`, the same measurements for a one-hidden-layer MLP (256 ReLU units, Adam,
40 epochs of 64-prompt batches, weight decay 1e-4, classes weighted equally) instead, which stops
at its best validation ROC-AUC on one half of the validation split and calibrates the threshold on
the other half's benign prompts (as `curvalid train` does); one run per seed.

Needs numpy and scipy (a throwaway virtual environment, or the system's).

  python3 layer_probe.py --vectors /tmp/layers --corpus ~/.cache/curvalid/corpus/corpus.jsonl \
      --outside /tmp/outside --l2 1e-2,1e-3,1e-4
  python3 layer_probe.py --vectors /tmp/layers --corpus ~/.cache/curvalid/corpus/corpus.jsonl \
      --outside /tmp/outside --mlp-seeds 42,7,1
"""

import argparse
import json

import numpy as np
from scipy.optimize import minimize

FEATURE_SETS = [["L6"], ["L3"], ["L1"], ["L6", "L3"], ["L6", "L1"], ["L6", "L3", "L1"]]


def load(prefix):
    meta = [json.loads(line) for line in open(prefix + ".jsonl")]
    vectors = np.fromfile(prefix + ".f32", dtype=np.float32).reshape(len(meta), -1).astype(np.float64)
    width = vectors.shape[1] // 3
    blocks = {"L6": vectors[:, :width], "L1": vectors[:, width:2 * width], "L3": vectors[:, 2 * width:]}
    column = lambda key: np.array([m[key] for m in meta])
    return blocks, column("label"), column("family"), column("split")


def fit(features, labels, l2):
    """A scoring function (logits) of a class-balanced, L2-regularised logistic regression."""
    mean, scale = features.mean(0), features.std(0) + 1e-6
    z = (features - mean) / scale
    positives = labels.sum()
    weights = np.where(labels == 1, len(labels) / (2 * positives), len(labels) / (2 * (len(labels) - positives)))

    def objective(parameters):
        w, b = parameters[:-1], parameters[-1]
        logits = z @ w + b
        loss = np.sum(weights * (np.logaddexp(0, logits) - labels * logits)) / len(labels) + l2 * w @ w / 2
        gradient = weights * (1 / (1 + np.exp(-logits)) - labels) / len(labels)
        return loss, np.concatenate([z.T @ gradient + l2 * w, [gradient.sum()]])

    result = minimize(objective, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    w, b = result.x[:-1], result.x[-1]
    return lambda x: ((x - mean) / scale) @ w + b


def fit_mlp(features, labels, stop_features, stop_labels, seed, hidden=256, epochs=40, rate=1e-3, decay=1e-4):
    """A scoring function (logits) of a one-hidden-layer MLP kept at its best epoch by the ROC-AUC
    of (`stop_features`, `stop_labels`)."""
    rng = np.random.default_rng(seed)
    mean, scale = features.mean(0), features.std(0) + 1e-6
    standard = lambda x: ((x - mean) / scale).astype(np.float32)
    z, z_stop = standard(features), standard(stop_features)
    width = z.shape[1]
    parameters = [
        rng.normal(0, np.sqrt(2 / width), (width, hidden)).astype(np.float32), np.zeros(hidden, np.float32),
        rng.normal(0, np.sqrt(1 / hidden), (hidden, 1)).astype(np.float32), np.zeros(1, np.float32),
    ]
    first = [np.zeros_like(p) for p in parameters]
    second = [np.zeros_like(p) for p in parameters]
    positives = labels.sum()
    weights = np.where(
        labels == 1, len(labels) / (2 * positives), len(labels) / (2 * (len(labels) - positives))).astype(np.float32)

    def forward(x, p):
        activations = np.maximum(x @ p[0] + p[1], 0)
        return activations, (activations @ p[2] + p[3])[:, 0]

    best, kept, step = -1.0, None, 0
    for _ in range(epochs):
        order = rng.permutation(len(z))
        for start in range(0, len(z), 64):
            rows = order[start:start + 64]
            activations, logits = forward(z[rows], parameters)
            g = weights[rows] * (0.5 * (1 + np.tanh(logits / 2)) - labels[rows]) / len(rows)
            g_hidden = (g[:, None] @ parameters[2].T) * (activations > 0)
            gradients = [z[rows].T @ g_hidden + decay * parameters[0], g_hidden.sum(0),
                         activations.T @ g[:, None] + decay * parameters[2], g.sum(keepdims=True)]
            step += 1
            for k, gradient in enumerate(gradients):
                first[k] = 0.9 * first[k] + 0.1 * gradient
                second[k] = 0.999 * second[k] + 0.001 * gradient ** 2
                parameters[k] -= rate * (first[k] / (1 - 0.9 ** step)) / (np.sqrt(second[k] / (1 - 0.999 ** step)) + 1e-8)
        _, stop_logits = forward(z_stop, parameters)
        auc = roc_auc(stop_logits[stop_labels == 1], stop_logits[stop_labels == 0])
        if auc > best:
            best, kept = auc, [p.copy() for p in parameters]
    return lambda x: forward(standard(x), kept)[1]


def roc_auc(positive, negative):
    ranks = np.concatenate([positive, negative]).argsort().argsort() + 1
    return (ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))


def threshold(benign_scores, rate=0.01):
    """The lowest score that flags at most `rate` of `benign_scores`."""
    ordered = np.sort(benign_scores)[::-1]
    k = int(np.floor(rate * len(ordered)))
    return ordered[k] + 1e-9 if k < len(ordered) else ordered[-1]


def length_matched_auc(scores, positive, negative, log_length):
    edges = np.quantile(log_length[positive], np.linspace(0, 1, 6))
    aucs, weights = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        p = positive & (log_length >= low) & (log_length <= high)
        n = negative & (log_length >= low) & (log_length <= high)
        if p.sum() >= 5 and n.sum() >= 5:
            aucs.append(roc_auc(scores[p], scores[n]))
            weights.append(min(p.sum(), n.sum()))
    return np.average(aucs, weights=weights)


def evaluate(names, trainer, corpus, log_length, outside):
    """`trainer(rows, stop_rows, features, y)` returns a scoring function; `stop_rows` is where an
    MLP stops, and the threshold comes from the validation rows that are not `stop_rows`."""
    blocks, label, family, split = corpus
    features = np.hstack([blocks[n] for n in names])
    keep = label != "harmful"
    y = (label == "adversarial").astype(float)
    train, validation, test = (keep & (split == s) for s in ("train", "validation", "test"))
    stop = np.zeros(len(y), bool)
    if trainer.stops:
        stop[np.where(validation)[0][::2]] = True
    calibration = validation & ~stop
    score = trainer(train, validation & stop, features, y)
    s = score(features)
    t = threshold(s[calibration & (y == 0)])
    caught, flagged = s[test & (y == 1)] >= t, s[test & (y == 0)] >= t
    out = {
        "test AUC": roc_auc(s[test & (y == 1)], s[test & (y == 0)]),
        "TPR": caught.mean(), "FPR": flagged.mean(),
        "acc": (caught.sum() + (~flagged).sum()) / (len(caught) + len(flagged)),
        "matched AUC": length_matched_auc(s, test & (y == 1), test & (y == 0), log_length),
    }
    families = sorted(set(family[keep & (y == 1)]))
    recall, false_positive = {}, []
    for held in families:
        fold_score = trainer(train & (family != held), validation & stop & (family != held), features, y)(features)
        fold_threshold = threshold(fold_score[calibration & (family != held) & (y == 0)])
        recall[held] = (fold_score[keep & (family == held)] >= fold_threshold).mean()
        false_positive.append((fold_score[test & (y == 0)] >= fold_threshold).mean())
    larger = [f for f in families if (keep & (family == f)).sum() >= 14]
    out.update({
        "LOFO macro": np.mean(list(recall.values())), "six": np.mean([recall[f] for f in larger]),
        "injection": recall["prompt_injection"], "LOFO FPR": np.mean(false_positive),
    })
    if outside is not None:
        other_blocks, other_label, other_family, _ = outside
        so = score(np.hstack([other_blocks[n] for n in names]))
        attack, benign = other_label == "adversarial", other_label == "benign"
        kinds = sorted(set(other_family[attack]))
        at = lambda cut: np.mean([(so[attack & (other_family == k)] >= cut).mean() for k in kinds])
        out.update({
            "outside AUC": roc_auc(so[attack], so[benign]), "outside macro": at(t),
            "outside FPR": (so[benign] >= t).mean(), "recalibrated": at(threshold(so[benign])),
        })
    return out, recall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", required=True, help="prefix of the corpus vectors (main.swift's output)")
    parser.add_argument("--corpus", required=True, help="the corpus JSONL the vectors were made from (lengths)")
    parser.add_argument("--outside", help="prefix of the outside pool's vectors")
    parser.add_argument("--l2", default="1e-2,1e-3,1e-4", help="logistic regression penalties")
    parser.add_argument("--mlp-seeds", help="fit MLPs with these seeds instead of logistic regressions")
    args = parser.parse_args()
    corpus = load(args.vectors)
    lengths = [len(json.loads(line)["text"]) for line in open(args.corpus) if json.loads(line).get("text")]
    log_length = np.log(np.maximum(lengths, 1))
    outside = load(args.outside) if args.outside else None
    trainers = []
    if args.mlp_seeds:
        for seed in (int(v) for v in args.mlp_seeds.split(",")):
            def trainer(rows, stop_rows, features, y, seed=seed):
                return fit_mlp(features[rows], y[rows], features[stop_rows], y[stop_rows], seed)
            trainer.stops = True
            trainers.append((f"mlp seed {seed}", trainer))
    else:
        for l2 in (float(v) for v in args.l2.split(",")):
            def trainer(rows, stop_rows, features, y, l2=l2):
                return fit(features[rows], y[rows], l2)
            trainer.stops = False
            trainers.append((f"l2={l2:g}", trainer))
    for name, trainer in trainers:
        for names in FEATURE_SETS:
            out, recall = evaluate(names, trainer, corpus, log_length, outside)
            print(f"{name} {'+'.join(names):9s} " + " ".join(f"{k} {v:.3f}" for k, v in out.items()), flush=True)
            print("    " + " ".join(f"{f} {v:.3f}" for f, v in recall.items()), flush=True)


if __name__ == "__main__":
    main()
