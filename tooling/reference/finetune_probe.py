"""Fine-tuning probe (reference benchmark, not the product): does training the top layer(s) of
all-MiniLM-L6-v2 on the detection objective beat the frozen encoder? PyTorch version of what
`curvalid train --preset encoder-tuned` does in Swift (EncoderTuning), used to decide whether to
build it. Its own BERT (checked against `curvalid embed` to 3e-6), frozen states cached in half
precision, a mean-pooled linear head, class- and family-balanced BCE, random 128-row crops.

  python3 -m venv /tmp/venv-ft && /tmp/venv-ft/bin/pip install torch safetensors tokenizers
  /tmp/venv-ft/bin/python tooling/reference/finetune_probe.py --tune 1 --out scores.jsonl
  /tmp/venv-ft/bin/python tooling/reference/finetune_probe.py --tune 1 --holdout prompt_injection

Prints one JSON line: test-split ROC-AUC, accuracy, TPR and FPR at the threshold calibrated to 1%
benign validation FPR (or, with --holdout, the held-out family's TPR)."""
import json, math, random, sys, time, argparse, collections
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
ap.add_argument('--encoder', default=None)
ap.add_argument('--corpus', default='/root/.cache/curvalid/corpus/corpus.jsonl')
ap.add_argument('--tune', type=int, default=1, help='top layers trained')
ap.add_argument('--epochs', type=int, default=3)
ap.add_argument('--crop', type=int, default=128)
ap.add_argument('--lr', type=float, default=3e-5)
ap.add_argument('--holdout', default='')
ap.add_argument('--seed', type=int, default=42)
ap.add_argument('--cache', default='/tmp/finetune_probe_frozen', help='prefix of the frozen-state cache file')
ap.add_argument('--out', default='')
ap.add_argument('--load', default='')
a = ap.parse_args()
torch.manual_seed(a.seed); random.seed(a.seed)
torch.set_num_threads(2)
import glob
enc = a.encoder or glob.glob('/root/.cache/curvalid/encoders/*/')[0]
W = load_file(enc + 'model.safetensors')
W = {k[5:] if k.startswith('bert.') else k: v.float() for k, v in W.items()}
H, NH, L = 384, 12, 6

class Layer(nn.Module):
    def __init__(s, i):
        super().__init__()
        p = f'encoder.layer.{i}.'
        def lin(n, o, inn):
            m = nn.Linear(inn, o); m.weight.data = W[p + n + '.weight'].clone(); m.bias.data = W[p + n + '.bias'].clone(); return m
        def ln(n):
            m = nn.LayerNorm(H, eps=1e-12); m.weight.data = W[p + n + '.weight'].clone(); m.bias.data = W[p + n + '.bias'].clone(); return m
        s.q, s.k, s.v = lin('attention.self.query', H, H), lin('attention.self.key', H, H), lin('attention.self.value', H, H)
        s.o, s.ln1 = lin('attention.output.dense', H, H), ln('attention.output.LayerNorm')
        s.i, s.out, s.ln2 = lin('intermediate.dense', 4 * H, H), lin('output.dense', H, 4 * H), ln('output.LayerNorm')
    def forward(s, x, mask):  # x [B,T,H], mask [B,T] bool
        B, T, _ = x.shape
        sh = lambda t: t.view(B, T, NH, H // NH).transpose(1, 2)
        att = sh(s.q(x)) @ sh(s.k(x)).transpose(-1, -2) / math.sqrt(H // NH)
        att = att.masked_fill(~mask[:, None, None, :], -1e4).softmax(-1)
        ctx = (att @ sh(s.v(x))).transpose(1, 2).reshape(B, T, H)
        x = s.ln1(x + s.o(ctx))
        return s.ln2(x + s.out(F.gelu(s.i(x))))

layers = [Layer(i) for i in range(L)]
def embed(ids):  # ids [B,T]
    T = ids.shape[1]
    x = W['embeddings.word_embeddings.weight'][ids] + W['embeddings.position_embeddings.weight'][:T] + W['embeddings.token_type_embeddings.weight'][0]
    return F.layer_norm(x, (H,), W['embeddings.LayerNorm.weight'], W['embeddings.LayerNorm.bias'], 1e-12)

tok = Tokenizer.from_file(enc + 'tokenizer.json'); tok.no_truncation(); tok.no_padding()
recs = [json.loads(l) for l in open(a.corpus)]
recs = [r for r in recs if r['label'] in ('benign', 'adversarial')]
ids = [e.ids for e in tok.encode_batch([r['text'] for r in recs])]
ids = [x if len(x) <= 512 else x[:511] + [x[-1]] for x in ids]  # first window: [CLS] 510 pieces [SEP]
frozen_n = L - a.tune
import os
cpath = f'{a.cache}_{frozen_n}.pt'
if os.path.exists(cpath):
    frozen = torch.load(cpath)
else:
    t0 = time.time(); frozen = [None] * len(recs)
    order = sorted(range(len(recs)), key=lambda i: len(ids[i]))
    with torch.no_grad():
        i = 0
        while i < len(order):
            e = i + 1
            while e < len(order) and (e + 1 - i) * len(ids[order[e]]) <= 8192: e += 1
            chunk = order[i:e]; bs = e - i; T = max(len(ids[j]) for j in chunk)
            X = torch.zeros(len(chunk), T, dtype=torch.long); M = torch.zeros(len(chunk), T, dtype=torch.bool)
            for r, j in enumerate(chunk): X[r, :len(ids[j])] = torch.tensor(ids[j]); M[r, :len(ids[j])] = True
            h = embed(X)
            for l in layers[:frozen_n]: h = l(h, M)
            for r, j in enumerate(chunk): frozen[j] = h[r, :len(ids[j])].half().clone()
            i += bs
    torch.save(frozen, cpath); print(f'frozen {frozen_n} layers in {time.time() - t0:.0f}s', flush=True)

tuned = nn.ModuleList(layers[frozen_n:]); head = nn.Linear(H, 1)
adv = [r['label'] == 'adversarial' for r in recs]
tr = [i for i, r in enumerate(recs) if r['split'] == 'train' and r['family'] != a.holdout]
va = [i for i, r in enumerate(recs) if r['split'] == 'validation' and r['family'] != a.holdout]
te = [i for i, r in enumerate(recs) if r['split'] == 'test']
fam = collections.Counter(recs[i]['family'] for i in tr if adv[i])
wa = {f: 1 / math.sqrt(n) for f, n in fam.items()}; sa = sum(wa[recs[i]['family']] for i in tr if adv[i])
nb = sum(1 for i in tr if not adv[i])
weight = {i: (wa[recs[i]['family']] / sa if adv[i] else 1 / nb) * len(tr) / 2 for i in tr}
opt = torch.optim.AdamW([{'params': tuned.parameters(), 'lr': a.lr}, {'params': head.parameters(), 'lr': 1e-3}], weight_decay=0.01)

def batchify(idx, crop):
    xs = []
    for i in idx:
        h = frozen[i]
        if crop and h.shape[0] > crop:
            s = random.randint(0, h.shape[0] - crop); h = h[s:s + crop]
        xs.append(h)
    T = max(x.shape[0] for x in xs)
    X = torch.zeros(len(xs), T, H); M = torch.zeros(len(xs), T, dtype=torch.bool)
    for r, x in enumerate(xs): X[r, :x.shape[0]] = x.float(); M[r, :x.shape[0]] = True
    return X, M

def logits(X, M):
    h = X
    for l in tuned: h = l(h, M)
    m = M.float()[..., None]
    return head((h * m).sum(1) / m.sum(1)).squeeze(-1)

def score(idx):
    tuned.eval(); out = {}
    with torch.no_grad():
        order = sorted(idx, key=lambda i: frozen[i].shape[0]); k = 0
        while k < len(order):
            j = k + 1
            while j < len(order) and (j + 1 - k) * frozen[order[j]].shape[0] <= 8192: j += 1
            ch = order[k:j]
            X, M = batchify(ch, 0); z = logits(X, M)
            for i, v in zip(ch, z.tolist()): out[i] = v
            k = j
    tuned.train(); return out

if a.load:
    st = torch.load(a.load); tuned.load_state_dict(st['tuned']); head.load_state_dict(st['head'])
t0 = time.time(); steps = 0
for ep in range(a.epochs):
    random.shuffle(tr)
    for b in range(0, len(tr), 32):
        idx = tr[b:b + 32]; X, M = batchify(idx, a.crop)
        y = torch.tensor([float(adv[i]) for i in idx]); w = torch.tensor([weight[i] for i in idx])
        loss = (F.binary_cross_entropy_with_logits(logits(X, M), y, reduction='none') * w).mean()
        opt.zero_grad(); loss.backward(); opt.step(); steps += 1
    if a.out: torch.save({'tuned': tuned.state_dict(), 'head': head.state_dict()}, a.out + '.pt')
    print(f'epoch {ep + 1} done {time.time() - t0:.0f}s loss {loss.item():.3f}', flush=True)

def auc(pos, neg):
    # Mann-Whitney U with average ranks for ties.
    allv = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    tot = 0.0; n = len(allv); k = 0
    while k < n:
        j = k
        while j < n and allv[j][0] == allv[k][0]: j += 1
        avg = (k + j + 1) / 2
        tot += avg * sum(1 for t in range(k, j) if allv[t][1]); k = j
    return (tot - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
sv = score(va); vb = sorted(sv[i] for i in va if not adv[i]); thr = vb[int(math.ceil(len(vb) * 0.99)) - 1]
res = {'args': vars(a), 'train_seconds': time.time() - t0, 'threshold': thr}
if a.holdout:
    ho = [i for i, r in enumerate(recs) if r['family'] == a.holdout]
    sh = score(ho + [i for i in te if not adv[i]])
    tpr = sum(sh[i] > thr for i in ho) / len(ho); fpr = sum(sh[i] > thr for i in te if not adv[i]) / sum(1 for i in te if not adv[i])
    res.update(holdout=a.holdout, n=len(ho), tpr=tpr, test_benign_fpr=fpr)
else:
    st = score(te); P = [st[i] for i in te if adv[i]]; N = [st[i] for i in te if not adv[i]]
    tp = sum(v > thr for v in P); fp = sum(v > thr for v in N)
    pf = collections.defaultdict(lambda: [0, 0])
    for i in te:
        if adv[i]: pf[recs[i]['family']][0] += 1; pf[recs[i]['family']][1] += st[i] > thr
    res.update(auc=auc(P, N), acc=(tp + len(N) - fp) / (len(P) + len(N)), tpr=tp / len(P), fpr=fp / len(N), families={k: f'{v[1]}/{v[0]}' for k, v in pf.items()})
    if a.out:
        with open(a.out, 'w') as f:
            for i in te: f.write(json.dumps({'split': 'test', 'family': recs[i]['family'], 'adv': adv[i], 'z': st[i], 'tokens': frozen[i].shape[0]}) + '\n')
            for i in va: f.write(json.dumps({'split': 'validation', 'family': recs[i]['family'], 'adv': adv[i], 'z': sv[i], 'tokens': frozen[i].shape[0]}) + '\n')
print(json.dumps(res), flush=True)
