#!/usr/bin/env python3
"""Measure Hugging Face `transformers` BertModel on the prompts `curvalid bench encoder` uses.

Same synthetic token ids (the LCG in Sources/CurvalidCommands/BenchCommand.swift), same lengths,
same statistics: batch-1 median/min/max over --runs runs after 3 warm-up runs, and batched
milliseconds per prompt (median over several runs of one padded batch). Prints JSON lines with
the same fields as `curvalid bench encoder --json`.

Needs torch and transformers (a throwaway virtual environment; see tooling/bench/README.md).
"""
import argparse
import json
import os
import statistics
import time

import torch
from transformers import BertModel


def prompt(tokens: int, seed: int, cls: int = 101, sep: int = 102) -> list:
    state = seed
    ids = [cls]
    mask = (1 << 64) - 1
    for _ in range(tokens - 2):
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        ids.append(1000 + (state >> 33) % 28000)
    ids.append(sep)
    return ids


def flops(tokens: int) -> float:
    return 21.23e6 * tokens + 9216 * tokens * tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder-dir", default=os.environ.get("CURVALID_ENCODER_DIR"), required=False)
    parser.add_argument("--lengths", default="16,64,128,256,512")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    if not args.encoder_dir:
        parser.error("--encoder-dir (or CURVALID_ENCODER_DIR) is required")
    model = BertModel.from_pretrained(args.encoder_dir).eval()
    lengths = [int(x) for x in args.lengths.split(",")]
    for threads in [int(x) for x in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for tokens in lengths:
            single = torch.tensor([prompt(tokens, 1)])
            many = torch.tensor([prompt(tokens, i + 2) for i in range(args.batch)])
            times = []
            with torch.inference_mode():
                for _ in range(3):
                    model(input_ids=single)
                for _ in range(args.runs):
                    start = time.perf_counter()
                    model(input_ids=single)
                    times.append((time.perf_counter() - start) * 1e3)
                model(input_ids=many)
                batched = []
                for _ in range(max(3, min(10, 2000 // tokens))):
                    start = time.perf_counter()
                    model(input_ids=many)
                    batched.append((time.perf_counter() - start) * 1e3 / args.batch)
            median = statistics.median(times)
            per_prompt = statistics.median(batched)
            print(json.dumps({
                "threads": threads, "tokens": tokens, "median_ms": median, "min_ms": min(times),
                "max_ms": max(times), "gflops": flops(tokens) / (median * 1e6), "batch": args.batch,
                "batch_ms_per_prompt": per_prompt, "batch_prompts_per_s": 1e3 / per_prompt,
                "batch_gflops": flops(tokens) / (per_prompt * 1e6)}), flush=True)


if __name__ == "__main__":
    main()
