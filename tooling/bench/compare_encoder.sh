#!/usr/bin/env bash
# Runs `curvalid bench encoder` and the PyTorch reference on the same prompts in the same session
# and prints both with the ratio PyTorch / curvalid (above 1 means curvalid is faster).
#
#   bash tooling/bench/compare_encoder.sh [--runs N] [--lengths LIST]
#
# PyTorch comes from a throwaway virtual environment: $CURVALID_BENCH_VENV (default
# /tmp/curvalid-bench-venv), created with torch and transformers when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=30
lengths=16,64,128,256,512
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --lengths) lengths="$2"; shift 2 ;;
    *) echo "usage: compare_encoder.sh [--runs N] [--lengths LIST]" >&2; exit 64 ;;
  esac
done

bash tooling/setup.sh
swift build -c release --product curvalid >&2
venv="${CURVALID_BENCH_VENV:-/tmp/curvalid-bench-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch transformers
fi
if [ -n "${CURVALID_ENCODER_DIR:-}" ]; then
  encoder_dir="$CURVALID_ENCODER_DIR"
elif [ -n "${CURVALID_CACHE_DIR:-}" ]; then
  encoder_dir="$CURVALID_CACHE_DIR/encoders/all-minilm-l6-v2-0.1.0"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
  encoder_dir="$XDG_CACHE_HOME/curvalid/encoders/all-minilm-l6-v2-0.1.0"
else
  encoder_dir="$HOME/.cache/curvalid/encoders/all-minilm-l6-v2-0.1.0"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.build/release/curvalid bench encoder --json --runs "$runs" --lengths "$lengths" >"$work/swift.jsonl"
"$venv/bin/python" tooling/bench/pytorch_encoder.py --encoder-dir "$encoder_dir" --runs "$runs" \
  --lengths "$lengths" >"$work/torch.jsonl"
python3 - "$work/swift.jsonl" "$work/torch.jsonl" <<'PY'
import json, sys
def load(path):
    return {(r["threads"], r["tokens"]): r for r in map(json.loads, open(path))}
swift, torch = load(sys.argv[1]), load(sys.argv[2])
print("threads tokens | curvalid b1 ms  torch b1 ms  ratio | curvalid b32 ms/p  torch b32 ms/p  ratio")
for key in sorted(swift):
    s, t = swift[key], torch.get(key)
    if not t:
        continue
    print(f"{key[0]:7d} {key[1]:6d} | {s['median_ms']:14.2f} {t['median_ms']:12.2f} {t['median_ms']/s['median_ms']:6.2f}"
          f" | {s['batch_ms_per_prompt']:17.2f} {t['batch_ms_per_prompt']:15.2f}"
          f" {t['batch_ms_per_prompt']/s['batch_ms_per_prompt']:6.2f}")
PY
