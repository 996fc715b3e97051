"""The shipped tagger on the heard partials (issue 25 item 5's question: does it need fine-tuning?).

For every tagged utterance of a cached split (`python -m iqd.replay --bundle ... --heard`: the
bundle's transducer and the heard partials over the same audio), the bundle's tagger labels
  - the reference words (the upper bound),
  - the heard partial as it stood at the end of the audio (Whisper's decoder, spoken form),
  - the streaming transducer's transcript,
and each is scored against the reference tags: slot F1 over (slot, value) pairs
(`runtime.tag_metrics.slot_value_f1`: a slot counts when the same slot has the same words) and
intent accuracy.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tagger_heard.py --cache exp/iqdF/cache-t \\
        --split test --corpus data/c14k --out docs/tagger_heard
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iqd.cache import IqdCache
from runtime.manifest import read_manifest
from runtime.tag_metrics import intent_accuracy, slot_value_f1
from runtime.tagger import StreamingTagger


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", required=True, help="a cache filled with --heard")
    p.add_argument("--split", default="test")
    p.add_argument("--corpus", required=True, help="the corpus whose SPLIT.jsonl has the reference tags")
    p.add_argument("--bundle", default="models/default")
    p.add_argument("--out", required=True, help="writes OUT.json and OUT.md")
    a = p.parse_args(argv)
    refs = {u.id: u for u in read_manifest(Path(a.corpus) / f"{a.split}.jsonl") if u.tags and u.intent}
    cache = IqdCache(a.cache, a.split)
    rows = [u for u in cache.utts if u.id in refs]
    if not rows or any(u.heard is None for u in rows):
        print(f"{a.cache}/{a.split}: no tagged rows, or rows without heard partials (fill with --heard)", file=sys.stderr)
        return 1
    tagger = StreamingTagger.from_dir(Path(a.bundle) / "tagger", precision="int8")
    texts = {"reference words": [refs[u.id].words for u in rows],
             "heard partial at the end": [u.heard[-1][1].split() if u.heard else [] for u in rows],
             "streaming transducer": [u.hyp.split() for u in rows]}
    gold = [(refs[u.id].words, refs[u.id].tags) for u in rows]
    gold_intents = [refs[u.id].intent for u in rows]
    results = {}
    for name, words in texts.items():
        tagged = [tagger.tag(w) if w else ([], None) for w in words]
        intents = [(i or {}).get("label") if isinstance(i, dict) else i for _, i in tagged]
        f1 = slot_value_f1(gold, [(w, t) for w, (t, _) in zip(words, tagged)])
        results[name] = {**f1, "intent_accuracy": intent_accuracy(gold_intents, intents), "n": len(rows)}
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    md = ["| tagger input | slot F1 (slot, value) | precision | recall | intent accuracy |", "|---|---:|---:|---:|---:|"]
    md += [f"| {k} | {100 * r['f1']:.1f} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} | "
           f"{100 * r['intent_accuracy']:.1f}% |" for k, r in results.items()]
    md_text = f"{len(rows)} tagged utterances of {a.cache}/{a.split}\n\n" + "\n".join(md) + "\n"
    out.with_suffix(".md").write_text(md_text)
    print(md_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
