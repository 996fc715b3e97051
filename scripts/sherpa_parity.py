#!/usr/bin/env python
"""Does sherpa-onnx (PyPI) decode our ASR export as our runtime does? Issue 3's contract check.

    nice -n 5 .venv/bin/python scripts/sherpa_parity.py --bundle models/default --corpus data/c14k --n 42 --out exp/sherpa_parity.json

On `--n` utterances of the test split, drawn round-robin over the voices (as `heed corpus check`
draws a per-voice sample, seed 0), the bundle's int8 ASR decodes each file:

- ours: `runtime.asr.AsrStream` alone (no endpointing), modified beam search (beam 4), greedy
  (up to 3 tokens per frame, our default) and greedy with one token per frame (sherpa-onnx's);
- sherpa-onnx's `OnlineRecognizer`, one thread, with the options `runtime.sherpa` sets
  (our fbank: normalize_samples=False, snip_edges=True, high_freq=0) and the tail of zeros that
  makes it decode the same chunks, modified_beam_search (4 paths) and greedy_search;
- sherpa-onnx modified_beam_search with its own fbank defaults, and with one of the two frame
  options fixed at a time, to show what each is worth.

Counts identical transcripts per pair and the WER of each against the reference; writes JSON
(--out, per file and summary) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np

from runtime.scoring import sample_per_voice
from runtime.manifest import audio_path, read_manifest
from runtime.asr import AsrStream, TransducerModel
from runtime.audio import load_audio
from runtime.evaluate import pooled_wer
from runtime.sherpa import SherpaAsr, sherpa_version

# sherpa-onnx feature variants (beam search): its defaults, then one of our frame options at a time
VARIANTS = {
    "sherpa_beam_defaults": {"snip_edges": False, "high_freq": -400.0},
    "sherpa_beam_snip_edges_only": {"high_freq": -400.0},
    "sherpa_beam_high_freq_only": {"snip_edges": False},
}
# (sherpa-onnx system, our system it should equal)
PAIRS = [("sherpa_beam", "ours_beam"), ("sherpa_beam", "ours_beam_sherpa_policies"),
         ("sherpa_greedy", "ours_greedy"), ("sherpa_greedy", "ours_greedy_1_per_frame"),
         ("sherpa_greedy", "ours_greedy_sherpa_policies"),
         *((v, "ours_beam") for v in VARIANTS)]


def pick(manifest: Path, n: int) -> list:
    """n utterances, round-robin over the voices of a per-voice sample (seed 0)."""
    utts = read_manifest(manifest)
    voices = sorted({u.voice or "unknown" for u in utts})
    sample = sample_per_voice(utts, math.ceil(n / len(voices)), np.random.default_rng(0))
    by_voice = [[u for u in sample if (u.voice or "unknown") == v] for v in voices]
    order = [u for rank in range(max(map(len, by_voice))) for vs in by_voice for u in vs[rank : rank + 1]]
    return order[:n]


def ours(model: TransducerModel, x, beam: int, max_symbols_per_frame: int = 3) -> str:
    s = AsrStream(model, beam=beam, max_symbols_per_frame=max_symbols_per_frame)
    s.accept_waveform(x)
    s.input_finished()
    return s.result()["text"]


def ours_as_sherpa(model: TransducerModel, x, beam: int, tail: int, n_chunks: int) -> str:
    """Ours with sherpa-onnx's two decode policies: the same zero-padded samples, every frame of the
    chunks sherpa-onnx decoded searched (no end-of-input flush), greedy at one token per frame,
    and the final hypothesis of the beam picked by log-probability per token (sherpa-onnx's
    `GetMostProbable(true)`: divided by the tokens plus the context_size leading blanks)."""
    s = AsrStream(model, beam=beam, max_symbols_per_frame=1)
    s.feed(np.concatenate([x, np.zeros(tail, np.float32)]))
    for _ in range(n_chunks):
        s.decode_chunk()
    best = max(s.hyps, key=lambda h: h.log_prob / (len(h.tokens) + model.context_size)) if beam > 1 else s.best
    return " ".join(w["word"] for w in model.words(best))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--corpus", default="data/c14k", help="corpus folder (reads SPLIT.jsonl) or a manifest")
    ap.add_argument("--split", default="test")
    ap.add_argument("--precision", default="int8", help="the bundle's ASR graphs to load: int8 or fp32")
    ap.add_argument("--n", type=int, default=42, help="utterances (default: 2 per voice of 21)")
    ap.add_argument("--out", default="exp/sherpa_parity.json")
    args = ap.parse_args()
    if sherpa_version() is None:
        print("sherpa_parity: sherpa_onnx is not importable (pip install sherpa-onnx)", file=sys.stderr)
        return 1
    corpus = Path(args.corpus)
    manifest = corpus if corpus.suffix == ".jsonl" else corpus / f"{args.split}.jsonl"
    utts = pick(manifest, args.n)

    load = lambda **kw: SherpaAsr.from_bundle(args.bundle, threads=1, precision=args.precision, **kw)  # noqa: E731
    beam = load(beam=4)
    model = beam.model
    sherpa = {"sherpa_beam": beam, "sherpa_greedy": load(beam=1, model=model),
              **{k: load(beam=4, model=model, **o) for k, o in VARIANTS.items()}}
    rows = []
    for i, u in enumerate(utts):
        x = load_audio(audio_path(manifest, u), model.fbank.sample_rate)
        row = {"id": u.id, "voice": u.voice, "ref": u.text,
               "ours_beam": ours(model, x, 4), "ours_greedy": ours(model, x, 1),
               "ours_greedy_1_per_frame": ours(model, x, 1, max_symbols_per_frame=1)}
        decoded = {k: r.decode(x) for k, r in sherpa.items()}
        row.update({k: r.text for k, r in decoded.items()})
        for k, beam_k in (("beam", 4), ("greedy", 1)):
            d = decoded[f"sherpa_{k}"]
            row[f"ours_{k}_sherpa_policies"] = ours_as_sherpa(model, x, beam_k, d.tail_samples, len(d.chunk_ms))
        rows.append(row)
        print(f"{i + 1}/{len(utts)} {u.id}: {'same' if row['sherpa_beam'] == row['ours_beam'] else 'DIFFERENT'}",
              file=sys.stderr)
    systems = [k for k in rows[0] if k.startswith(("ours_", "sherpa_"))]
    summary = {
        "n": len(rows), "voices": len({r["voice"] for r in rows}), "sherpa_onnx": sherpa_version(),
        "bundle": args.bundle, "precision": args.precision, "manifest": str(manifest), "threads": 1,
        "identical": {f"{a} == {b}": sum(r[a] == r[b] for r in rows) for a, b in PAIRS},
        "wer": {k: pooled_wer((r["ref"], r[k]) for r in rows) for k in systems},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "files": rows}, indent=1) + "\n")
    print(f"sherpa-onnx {summary['sherpa_onnx']} on {args.bundle} ({args.precision}, 1 thread), {summary['n']} utterances, "
          f"{summary['voices']} voices of {manifest}\n")
    print("| sherpa-onnx | ours | identical transcripts |\n|---|---|---:|")
    for pair, k in summary["identical"].items():
        a, b = pair.split(" == ")
        print(f"| {a} | {b} | {k}/{len(rows)} |")
    print("\n| system | WER |\n|---|---:|")
    for k, w in summary["wer"].items():
        print(f"| {k} | {100 * w:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
