#!/usr/bin/env python
"""The ASR benchmark behind docs/asr.md and the issue's closing note.

    .venv/bin/python scripts/bench_asr.py --bundle models/default --corpus data/base --per-voice 20

On the same per-voice sample of the test split (drawn as `heed corpus check` draws it):
- heed's WER and whole-pipeline real-time factor (int8, one thread, 100 ms pieces);
- Whisper tiny.en's WER (faster-whisper, int8; hypotheses put in spoken form as the corpus gate does);
- per-chunk compute time (encoder + search), median and p95, on one thread;
- parameters, int8 ASR size and bundle size.
Writes JSON and markdown (--out), prints the markdown.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--corpus", default="data/base")
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-voice", type=int, default=20)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--whisper-threads", type=int, default=2)
    ap.add_argument("--no-whisper", action="store_true")
    ap.add_argument("--whisper-cache", help="JSON file of Whisper hypotheses by utterance id: read, completed, written "
                    "(Whisper's output does not depend on heed's bundle)")
    ap.add_argument("--out", default="docs/asr_bench")
    args = ap.parse_args()

    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio
    from runtime.evaluate import evaluate, pooled_wer, select
    from runtime.pipeline import Pipeline

    manifest = Path(args.corpus) / f"{args.split}.jsonl"
    utts = select(read_manifest(manifest), args.limit, args.per_voice)
    pipe = Pipeline.from_bundle(args.bundle, threads=args.threads)
    report = evaluate(manifest, pipe, utts, progress=True)

    # Per-chunk compute, one stream per utterance, the first 100 utterances.
    chunk_ms: list[float] = []
    for u in utts[:100]:
        s = pipe.create_stream()
        x = load_audio(audio_path(manifest, u))
        for i in range(0, len(x), 1600):
            s.accept_waveform(x[i : i + 1600], 16000)
        s.input_finished()
        chunk_ms += s.asr.chunk_ms

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
        "bundle": args.bundle, "manifest": str(manifest), "n_utts": report.n_utts,
        "audio_s": round(sum(r.duration_s for r in report.results), 1),
        "heed": {"wer": report.wer, "rtf": report.rtf, "threads": args.threads,
                 "by_class": report.groups["class"], "by_condition": report.groups["condition"],
                 "by_source": report.groups["source"], "understanding": report.understanding},
        "chunk_ms": {"median": float(np.median(chunk_ms)), "p95": float(np.percentile(chunk_ms, 95)),
                     "n": len(chunk_ms), "chunk_audio_ms": pipe.bundle.manifest["asr"]["chunk_ms"]},
    }
    from corpus.tts import VOICES

    heldout = {v for v, voice in VOICES.items() if voice.heldout}
    result["heed"]["by_voice_set"] = {
        name: {"wer": pooled_wer((x.ref, x.hyp) for x in report.results if (x.voice in heldout) is held),
               "n_utts": sum((x.voice in heldout) is held for x in report.results)}
        for name, held in (("held-out", True), ("training", False))}
    bundle = Path(args.bundle)
    files = pipe.bundle.manifest["asr"]["files"]["int8"]
    result["int8_asr_bytes"] = sum((bundle / f).stat().st_size for f in files.values())
    result["bundle_bytes"] = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    result["n_params"] = pipe.bundle.manifest["asr"].get("n_params")
    lm = pipe.bundle.manifest["asr"].get("lm")
    if lm:  # shallow fusion in the beam search
        result["lm"] = {**lm, "bytes": (bundle / lm["file"]).stat().st_size}

    if not args.no_whisper:
        from corpus.check import transcribe_files
        from runtime.verbalize import spoken_form

        import json

        cache_path = Path(args.whisper_cache) if args.whisper_cache else None
        cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
        todo = [u for u in utts if u.id not in cache.get("hyps", {})]
        t0 = time.perf_counter()
        new = transcribe_files([audio_path(manifest, u) for u in todo], args.whisper_threads) if todo else []
        dt = time.perf_counter() - t0
        if todo:  # the real-time factor is that of the files transcribed now, or the cached one
            cache = {"hyps": {**cache.get("hyps", {}), **{u.id: h for u, h in zip(todo, new)}},
                     "compute_s": dt, "audio_s": sum(u.duration for u in todo)}
            if cache_path:
                cache_path.write_text(json.dumps(cache) + "\n")
        hyps = [cache["hyps"][u.id] for u in utts]
        dt = cache["compute_s"] * result["audio_s"] / cache["audio_s"]
        pairs = [(u.text, spoken_form(h) or "") for u, h in zip(utts, hyps)]
        by_class = {}
        for name, d in (("directed", True), ("undirected", False)):
            by_class[name] = pooled_wer(p for p, u in zip(pairs, utts) if u.directed is d)
        by_set = {name: {"wer": pooled_wer(p for p, u in zip(pairs, utts) if (u.voice in heldout) is held)}
                  for name, held in (("held-out", True), ("training", False))}
        result["whisper_tiny_en"] = {"wer": pooled_wer(pairs), "rtf": dt / result["audio_s"],
                                     "threads": args.whisper_threads, "by_class": by_class, "by_voice_set": by_set}
    from runtime.bench import write_report

    write_report(Path(args.out), result, to_markdown(result))
    return 0


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def to_markdown(r: dict) -> str:
    h = r["heed"]
    lines = [
        f"# ASR benchmark ({r['manifest']}, {r['n_utts']} utterances, {r['audio_s'] / 60:.1f} min)", "",
        f"Machine: {r['machine']}. Command: `.venv/bin/python scripts/bench_asr.py`.", "",
        "| system | WER | directed | undirected | real-time factor |", "|---|---:|---:|---:|---:|",
    ]
    cls = {row["name"]: row["wer"] for row in h["by_class"]}
    lines.append(f"| heed (int8, {h['threads']} thread) | {_pct(h['wer'])} | {_pct(cls.get('directed'))} | "
                 f"{_pct(cls.get('undirected'))} | {h['rtf']:.4f} |")
    if "whisper_tiny_en" in r:
        w = r["whisper_tiny_en"]
        lines.append(f"| Whisper tiny.en (int8, {w['threads']} threads) | {_pct(w['wer'])} | "
                     f"{_pct(w['by_class'].get('directed'))} | {_pct(w['by_class'].get('undirected'))} | {w['rtf']:.4f} |")
    u = h.get("understanding")
    if u:
        lines += ["", f"- end to end (ASR then the bundle's tagger): slot F1 {100 * u['slot_f1']:.1f} over (slot, value) pairs "
                  f"({u['n_ref_slots']} reference slots), intent accuracy "
                  + ("n/a" if u["intent_accuracy"] is None else f"{100 * u['intent_accuracy']:.1f}%")
                  + f" ({u['n_intent_utts']} utterances)"]
    if "by_voice_set" in h:
        lines += ["", "- heed WER by voice set: " + ", ".join(
            f"{k} voices {_pct(v['wer'])} ({v['n_utts']} utterances)" for k, v in h["by_voice_set"].items())]
    if "by_voice_set" in r.get("whisper_tiny_en", {}):
        lines += ["- Whisper tiny.en WER by voice set: " + ", ".join(
            f"{k} voices {_pct(v['wer'])}" for k, v in r["whisper_tiny_en"]["by_voice_set"].items())]
    c = r["chunk_ms"]
    lines += ["", f"- per-chunk compute ({c['chunk_audio_ms']} ms of audio, encoder + search, 1 thread): "
              f"median {c['median']:.2f} ms, p95 {c['p95']:.2f} ms over {c['n']} chunks",
              f"- int8 ASR (encoder + decoder + joiner): {r['int8_asr_bytes'] / 1e6:.2f} MB; "
              f"bundle folder: {r['bundle_bytes'] / 1e6:.2f} MB; parameters: {r['n_params']}"]
    if "lm" in r:
        lm = r["lm"]
        lines += [f"- shallow fusion: order-{lm['order']} character n-gram LM ({lm['bytes'] / 1e6:.2f} MB), "
                  f"scale {lm['scale']}, bonus {lm['bonus']} per token, end-of-sentence scale {lm.get('eos_scale', 0.0)}"]
    lines += ["",
              "## heed WER by condition", "", "| condition | utterances | WER |", "|---|---:|---:|"]
    lines += [f"| {row['name']} | {row['n_utts']} | {_pct(row['wer'])} |" for row in h["by_condition"]]
    lines += ["", "## heed WER by source", "", "| source | utterances | WER |", "|---|---:|---:|"]
    lines += [f"| {row['name']} | {row['n_utts']} | {_pct(row['wer'])} |" for row in h.get("by_source", [])]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
