#!/usr/bin/env python
"""The voice-activity gate's benchmark behind docs/vad_bench.md: the pipeline with and without it.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_vad.py --corpus data/c14k --split test \
        --wheel silero_vad-6.2.3-py3-none-any.whl --out docs/vad_bench

Sections (each row: the bundle's pipeline with `--no-vad`, then with its VAD):
1. the model: each ONNX graph of silero-vad's wheel (--wheel; `pip download silero-vad==6.2.3
   --no-deps`): size, time per 32 ms window, largest difference from silero_vad.onnx's output;
2. non-speech: --silence-minutes of generated silence and quiet noise, one stream per kind, fed
   in 100 ms pieces as `heed transcribe` does: words and final events emitted, compute;
3. frame accuracy of the detector against the manifest's speech_start/speech_end (a 32 ms window
   is speech when its centre lies between them) on the split, for silero's raw probability, the
   gate (`runtime.vad.VadGate`, the bundle's policy) and, through the same gate, an energy
   detector (window RMS more than 6 dB above a noise floor that falls at once and rises 3 dB/s);
   and the share of the non-speech windows of section 2 each calls speech;
4. `heed eval` on the split (`runtime.evaluate.evaluate`, the same code): WER, slot F1, intent
   accuracy, the IQD's EER, FA/FR and decision latency; compute per 320 ms chunk of audio;
5. the continuous recordings of `heed corpus streams CORPUS --split SPLIT` when they exist
   (CORPUS/streams/SPLIT.jsonl): WER, words in the pauses, the IQD's EER and latency
   (`stream_rows` says how events are matched to utterances);
6. latency on a per-voice sample of the split, streamed in 20 ms pieces: the audio time at which
   the first partial with words and the first final with words were emitted, minus the
   manifest's speech_start and speech_end.
--grid adds rows to sections 4-6 with other gate policies (e.g. to choose one on dev).
Timings are wall clock and process CPU time, one onnxruntime thread (OMP_NUM_THREADS=1).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from corpus.augment import make_noise
from runtime.manifest import Utterance, audio_path, read_manifest
from runtime.audio import load_audio
from runtime.evaluate import evaluate, pooled_wer, select
from runtime.pipeline import Pipeline
from runtime.transcribe import stream_file
from runtime.vad import VadConfig, VadGate, VadModel

SR = 16000
NOISES = [("digital silence", "zero", None), ("white noise", "white", -60.0), ("white noise", "white", -40.0),
          ("pink noise", "pink", -60.0), ("pink noise", "pink", -40.0), ("room-like noise", "room", -50.0)]


def noise(kind: str, dbfs: float | None, n: int, seed: int) -> np.ndarray:
    """n samples of one kind of non-speech at dbfs RMS; "room": brown noise with mains hum 10 dB below it."""
    rng = np.random.default_rng(seed)
    if kind == "zero":
        return np.zeros(n, np.float32)
    if kind == "room":
        x = make_noise("brown", n, rng, SR) + 10 ** (-10 / 20) * make_noise("hum", n, rng, SR)
        x /= np.sqrt(np.mean(x ** 2))
    else:
        x = make_noise(kind, n, rng, SR)
    return (10 ** (dbfs / 20) * x).astype(np.float32)


def pipelines(bundle: str | None, grid: list[dict[str, float]]) -> list[tuple[str, Pipeline]]:
    """(label, pipeline): without the VAD, with the bundle's, and one per --grid policy."""
    off, on = Pipeline.from_bundle(bundle, threads=1, vad=False), Pipeline.from_bundle(bundle, threads=1)
    if on.vad is None:
        raise SystemExit(f"{on.bundle.path}: the bundle has no `vad` entry")
    out = [("no VAD", off), (f"VAD ({_policy(on.vad.config)})", on)]
    entry = on.bundle.manifest["vad"]
    for g in grid:
        p = Pipeline.from_bundle(bundle, threads=1)
        cfg = dataclasses.replace(p.vad.config, **g)
        p.vad = VadModel.from_entry(p.bundle.file(entry["file"]), entry, threads=1, config=cfg)
        out.append((f"VAD ({_policy(cfg)})", p))
    return out


def _policy(cfg: VadConfig) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in cfg.to_dict().items())


def model_table(wheel: Path, x: np.ndarray) -> list[dict[str, Any]]:
    """Each ONNX graph of the wheel on signal x: bytes, ms per window, max |p - p(silero_vad.onnx)|."""
    import tempfile

    rows, ref = [], None
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        names = sorted(n for n in z.namelist() if n.startswith("silero_vad/data/") and n.endswith(".onnx"))
        names.sort(key=lambda n: not n.endswith("/silero_vad.onnx"))  # the reference first
        for name in names:
            path = Path(tmp) / Path(name).name
            path.write_bytes(z.read(name))
            row: dict[str, Any] = {"graph": path.name, "bytes": path.stat().st_size}
            try:
                run = _sequence_graph(path) if "sequence" in path.name else VadModel(path).probabilities
                run(x[: 10 * 512])  # warm-up
                t0 = time.perf_counter()
                p = run(x)
                row["ms_per_window"] = 1000 * (time.perf_counter() - t0) / len(p)
                ref = p if ref is None else ref
                row["max_abs_diff"] = float(np.abs(p - ref).max())
            except Exception as e:  # a graph this onnxruntime or wrapper cannot run is a finding, not a crash
                row["error"] = str(e).splitlines()[0].split(".onnx: ", 1)[-1][:120]
            rows.append(row)
    return rows


def _sequence_graph(path: Path):
    """The wheel's sequence graph (another interface: LSTM states h, c; rows of 64 + 512 samples),
    run one window per call like the others."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        n = len(x) // 512
        padded = np.concatenate([np.zeros(64, np.float32), x[: n * 512]])
        h = c = np.zeros((1, 1, 128), np.float32)
        out = np.empty(n)
        for i in range(n):
            p, h, c = sess.run(None, {"input": padded[None, i * 512: i * 512 + 576], "h": h, "c": c})
            out[i] = p[0]
        return out

    return run


def silence_rows(pipes: list[tuple[str, Pipeline]], minutes: float) -> list[dict[str, Any]]:
    n = int(minutes * 60 * SR / len(NOISES))
    rows = []
    for label, pipe in pipes[:2]:
        for i, (name, kind, dbfs) in enumerate(NOISES):
            x = noise(kind, dbfs, n, seed=i)
            w0, c0 = time.perf_counter(), time.process_time()
            events = list(stream_file(pipe, x))
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            finals = [e for e in events[:-1] if e["final"] and e["words"]]
            words = [w["word"] for w in events[-1]["words"]]
            rows.append({"pipeline": label, "noise": name, "dbfs": dbfs, "minutes": n / SR / 60,
                         "finals_with_words": len(finals), "words": len(words),
                         "single_letter_words": sum(len(w) == 1 for w in words),
                         "examples": " ".join(words[:12]), "wall_s": wall, "cpu_s": cpu})
    return rows


def energy_probs(x: np.ndarray, window: int, margin_db: float = 6.0, rise_db_per_s: float = 3.0) -> np.ndarray:
    """1.0 where a window's RMS is more than margin_db above the tracked noise floor, else 0.0."""
    n = len(x) // window
    e = 10 * np.log10(np.mean(x[: n * window].astype(np.float64).reshape(n, window) ** 2, axis=1) + 1e-12)
    rise = rise_db_per_s * window / SR
    out, floor = np.zeros(n), None
    for i, v in enumerate(e):
        floor = v if floor is None else min(v, floor + rise)
        out[i] = v > floor + margin_db
    return out


def gated(probs: np.ndarray, cfg: VadConfig, window: int) -> np.ndarray:
    """The gate's speech/non-speech per window (start to end, unpadded) over a probability track."""
    gate, out, since = VadGate(cfg, SR, window), np.zeros(len(probs), bool), None
    for i, p in enumerate(probs):
        ev = gate.step(float(p))
        if ev and "start" in ev:
            since = ev["start"] // window
        if ev and "end" in ev:
            out[since: ev["end"] // window] = True
            since = None
    if since is not None:
        out[since:] = True
    return out


def frame_rows(model: VadModel, manifest: Path, utts: list[Utterance], minutes: float) -> dict[str, Any]:
    w, cfg = model.window, model.config
    detectors = {"silero, raw (p >= threshold)": lambda x, p: p >= cfg.threshold,
                 "silero through the gate": lambda x, p: gated(p, cfg, w),
                 "energy through the gate": lambda x, p: gated(energy_probs(x, w), cfg, w)}
    counts = {k: np.zeros(4, np.int64) for k in detectors}  # tp, fn, fp, tn
    t_vad = n_windows = 0.0
    for u in utts:
        x = load_audio(audio_path(manifest, u), SR)
        t0 = time.process_time()
        p = model.probabilities(x)
        t_vad += time.process_time() - t0
        n_windows += len(p)
        centre = (np.arange(len(p)) + 0.5) * w / SR
        ref = (centre >= u.speech_start) & (centre < u.speech_end)
        for k, f in detectors.items():
            hyp = np.asarray(f(x, p), bool)
            counts[k] += [np.sum(hyp & ref), np.sum(~hyp & ref), np.sum(hyp & ~ref), np.sum(~hyp & ~ref)]
    n = int(minutes * 60 * SR / len(NOISES))
    silence = {k: [0, 0] for k in detectors}
    for i, (_, kind, dbfs) in enumerate(NOISES):
        x = noise(kind, dbfs, n, seed=i)
        p = model.probabilities(x)
        for k, f in detectors.items():
            hyp = np.asarray(f(x, p), bool)
            silence[k][0] += int(hyp.sum())
            silence[k][1] += len(hyp)
    rows = []
    for k, (tp, fn, fp, tn) in counts.items():
        rows.append({"detector": k, "accuracy": (tp + tn) / (tp + fn + fp + tn), "speech_recall": tp / (tp + fn),
                     "false_alarm": fp / (fp + tn), "silence_windows_called_speech": silence[k][0] / silence[k][1]})
    return {"rows": rows, "n_utts": len(utts), "n_windows": int(n_windows), "vad_ms_per_window": 1000 * t_vad / n_windows}


def eval_rows(pipes: list[tuple[str, Pipeline]], manifest: Path, utts: list[Utterance]) -> list[dict[str, Any]]:
    rows = []
    for label, pipe in pipes:
        c0 = time.process_time()
        r = evaluate(manifest, pipe, utts)
        cpu = time.process_time() - c0
        audio_s = sum(x.duration_s for x in r.results)
        u, q = r.understanding or {}, r.iqd or {}
        rows.append({"pipeline": label, "n_utts": r.n_utts, "wer": r.wer, "slot_f1": u.get("slot_f1"),
                     "intent_accuracy": u.get("intent_accuracy"), "iqd_eer": q.get("eer"), "fa_rate": q.get("fa_rate"),
                     "fr_rate": q.get("fr_rate"), "median_s": q.get("median_s"), "p90_s": q.get("p90_s"),
                     "rtf": r.rtf, "rtf_cpu": cpu / audio_s, "empty_hyps": sum(not x.hyp for x in r.results)})
    return rows


def latency_rows(pipes: list[tuple[str, Pipeline]], manifest: Path, utts: list[Utterance], piece_ms: float = 20.0) -> list[dict[str, Any]]:
    rows = []
    audio = [load_audio(audio_path(manifest, u), SR) for u in utts]
    for label, pipe in pipes:
        first_partial, first_final, pairs = [], [], []
        step = int(SR * piece_ms / 1000)
        for u, x in zip(utts, audio):
            s = pipe.create_stream()
            partial = final = None
            for i in range(0, len(x), step):
                s.accept_waveform(x[i: i + step], SR)
                now = min(len(x), i + step) / SR
                for ev in s.events():
                    if partial is None and not ev["final"] and _in_speech(ev, u):
                        partial = now
                    if final is None and ev["final"] and _in_speech(ev, u):
                        final = now
            s.input_finished()
            for ev in s.events():
                if final is None and _in_speech(ev, u):
                    final = len(x) / SR
            if partial is not None:
                first_partial.append(partial - u.speech_start)
            if final is not None:
                first_final.append(final - u.speech_end)
            pairs.append((u.text, s.result()["text"]))
        rows.append({"pipeline": label, "n_utts": len(utts), "wer": pooled_wer(pairs),
                     "first_partial_median_s": float(np.median(first_partial)), "first_partial_p90_s": float(np.percentile(first_partial, 90)),
                     "n_partial": len(first_partial), "first_final_median_s": float(np.median(first_final)),
                     "first_final_p90_s": float(np.percentile(first_final, 90)), "n_final": len(first_final)})
    return rows


def stream_rows(pipes: list[tuple[str, Pipeline]], streams: Path) -> list[dict[str, Any]]:
    """The continuous recordings of `heed corpus streams` (utterances joined by 0.5-4 s of low-level
    noise): each final event with words goes to the reference utterance whose speech its words
    overlap most (none: words in a pause); an utterance's hypothesis is its events' words, its IQD
    result the one of its event that overlaps most (no event: missed, undirected)."""
    from runtime.detection_metrics import eer, fa_fr, latency_stats

    index = [json.loads(line) for line in (streams).read_text().splitlines() if line.strip()]
    rows = []
    for label, pipe in pipes:
        pairs, outside, scores, labels, decisions, decided, starts, missed = [], 0, [], [], [], [], [], 0
        cpu = audio_s = 0.0
        for item in index:
            timeline = json.loads((streams.parent / item["timeline"]).read_text())
            x = load_audio(streams.parent / item["audio"], SR)
            c0 = time.process_time()
            events = list(stream_file(pipe, x))
            cpu, audio_s = cpu + time.process_time() - c0, audio_s + len(x) / SR
            finals = [e for e in events[:-1] if e["final"] and e["words"]]  # the last: the whole stream
            refs = timeline["segments"]
            got: list[list[tuple[float, dict]]] = [[] for _ in refs]
            for ev in finals:
                a, b = ev["words"][0]["start"], ev["words"][-1]["end"]
                overlap = [min(b, r["speech_end"]) - max(a, r["speech_start"]) for r in refs]
                best = int(np.argmax(overlap)) if refs else -1
                if best < 0 or overlap[best] <= 0:
                    outside += len(ev["words"])
                else:
                    got[best].append((overlap[best], ev))
            for r, evs in zip(refs, got):
                pairs.append((r["text"], " ".join(ev["text"] for _, ev in evs)))
                labels.append(bool(r["directed"]))
                if not evs:
                    missed += 1
                    scores.append(0.0)
                    decisions.append(False)
                    continue
                d = max(evs, key=lambda o: o[0])[1]["directed"]
                scores.append(d["probability"])
                decisions.append(d["decision"] == "directed")
                if d["decided_at"] is not None:
                    decided.append(d["decided_at"])
                    starts.append(r["speech_start"])
        rows.append({"pipeline": label, "n_streams": len(index), "minutes": audio_s / 60, "n_utts": len(pairs),
                     "wer": pooled_wer(pairs), "words_in_pauses": outside, "missed_utts": missed,
                     "iqd_eer": eer(scores, labels), **fa_fr(decisions, labels), **latency_stats(decided, starts),
                     "rtf_cpu": cpu / audio_s})
    return rows


def _in_speech(ev: dict[str, Any], u: Utterance) -> bool:
    """Whether an event has a word that reaches into the utterance's speech (not only words made of
    the non-speech before it)."""
    return any(w["end"] > u.speech_start for w in ev["words"])


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def to_markdown(res: dict[str, Any]) -> str:
    a = res["args"]
    lines = ["# The voice-activity gate: measurements", "",
             f"Made by `scripts/bench_vad.py` ({res['command']}) on {res['machine']}, one onnxruntime thread, "
             f"bundle `{a['bundle'] or 'models/default'}`, corpus split `{res['manifest']}`.", ""]
    if res.get("models"):
        lines += ["## The model: silero-vad's ONNX graphs", "",
                  f"Each graph of `{Path(a['wheel']).name}` on {res['model_signal_s']:.0f} s of the split's audio "
                  "(one window of 512 samples per call, fresh state):", "",
                  "| graph | bytes | ms per 32 ms window | max abs. difference from silero_vad.onnx |", "|---|---:|---:|---:|"]
        for r in res["models"]:
            if "error" in r:
                lines.append(f"| {r['graph']} | {r['bytes']:,} | does not run: {r['error']} | |")
            else:
                lines.append(f"| {r['graph']} | {r['bytes']:,} | {r['ms_per_window']:.3f} | {r['max_abs_diff']:.1e} |")
        lines.append("")
    if res.get("silence"):
        total = {}
        for r in res["silence"]:
            t = total.setdefault(r["pipeline"], [0, 0, 0, 0.0, 0.0, 0.0])
            t[0] += r["finals_with_words"]; t[1] += r["words"]; t[2] += r["single_letter_words"]
            t[3] += r["minutes"]; t[4] += r["wall_s"]; t[5] += r["cpu_s"]
        lines += ["## Silence and quiet noise", "",
                  f"{sum(v[3] for v in total.values()) / len(total):.0f} minutes per pipeline, one stream per kind, "
                  "fed in 100 ms pieces (`runtime.transcribe.stream_file`). Finals: final events with words before "
                  "the end of input; words: the whole stream's result.", "",
                  "| pipeline | non-speech | minutes | finals | words | one-letter words | first words | RTF (CPU) |",
                  "|---|---|---:|---:|---:|---:|---|---:|"]
        for r in res["silence"]:
            level = "" if r["dbfs"] is None else f" at {r['dbfs']:g} dBFS"
            lines.append(f"| {r['pipeline']} | {r['noise']}{level} | {r['minutes']:.3g} | {r['finals_with_words']} | "
                         f"{r['words']} | {r['single_letter_words']} | {r['examples'] or '—'} | {r['cpu_s'] / (60 * r['minutes']):.4f} |")
        for k, t in total.items():
            lines.append(f"| **{k}** | **all** | **{t[3]:.0f}** | **{t[0]}** | **{t[1]}** | **{t[2]}** | | **{t[5] / (60 * t[3]):.4f}** |")
        lines.append("")
    if res.get("frames"):
        f = res["frames"]
        lines += ["## Frame accuracy against the manifest's speech labels", "",
                  f"{f['n_windows']:,} windows of 32 ms in {f['n_utts']} utterances; a window is speech when its centre "
                  "lies between speech_start and speech_end (pauses between words count as speech). Silence: the "
                  "windows of the non-speech set above. The VAD alone costs "
                  f"{f['vad_ms_per_window']:.3f} ms (CPU) per 32 ms window.", "",
                  "| detector | accuracy | speech recall | false alarms (non-speech windows called speech) | silence and quiet noise called speech |",
                  "|---|---:|---:|---:|---:|"]
        for r in f["rows"]:
            lines.append(f"| {r['detector']} | {_pct(r['accuracy'])} | {_pct(r['speech_recall'])} | {_pct(r['false_alarm'])} | "
                         f"{_pct(r['silence_windows_called_speech'])} |")
        lines.append("")
    if res.get("eval"):
        lines += ["## `heed eval` on the split", "",
                  "WER, slot F1 and intent accuracy of the whole-file result; the IQD's EER of the final probability, "
                  "FA/FR of its decisions, their latency (decided_at - speech_start). Compute: the whole pipeline "
                  "per 320 ms chunk of audio (CPU time), and its real-time factor (wall).", "",
                  "| pipeline | utterances | WER | slot F1 | intent acc. | IQD EER | FA | FR | latency median | p90 | empty results | ms CPU per 320 ms | RTF (wall) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["eval"]:
            lines.append(f"| {r['pipeline']} | {r['n_utts']} | {_pct(r['wer'])} | {_pct(r['slot_f1'])} | {_pct(r['intent_accuracy'])} | "
                         f"{_pct(r['iqd_eer'])} | {_pct(r['fa_rate'])} | {_pct(r['fr_rate'])} | {r['median_s']:.2f} s | "
                         f"{r['p90_s']:.2f} s | {r['empty_hyps']} | {320 * r['rtf_cpu']:.2f} | {r['rtf']:.4f} |")
        lines.append("")
    if res.get("streams"):
        lines += ["## Continuous recordings", "",
                  f"`heed corpus streams` of the split ({res['streams'][0]['n_streams']} recordings, "
                  f"{res['streams'][0]['minutes']:.1f} minutes, {res['streams'][0]['n_utts']} utterances joined by "
                  "0.5-4 s of low-level noise), fed in 100 ms pieces. Each final event with words goes to the "
                  "utterance whose speech its words overlap most (none: words in a pause); an utterance's IQD result "
                  "is that of its most overlapping event (no event: missed, undirected).", "",
                  "| pipeline | WER | words in pauses | missed utterances | IQD EER | FA | FR | latency median | p90 | ms CPU per 320 ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["streams"]:
            lines.append(f"| {r['pipeline']} | {_pct(r['wer'])} | {r['words_in_pauses']} | {r['missed_utts']} | "
                         f"{_pct(r['iqd_eer'])} | {_pct(r['fa_rate'])} | {_pct(r['fr_rate'])} | {r['median_s']:.2f} s | "
                         f"{r['p90_s']:.2f} s | {320 * r['rtf_cpu']:.2f} |")
        lines.append("")
    if res.get("latency"):
        lines += ["## Latency", "",
                  f"A per-voice sample streamed in 20 ms pieces; the audio time at which an event was emitted "
                  "(all audio fed so far), minus the manifest's speech_start (the first partial with a word that "
                  "reaches into the speech) or speech_end (the first such final; the end of input when no endpoint "
                  "came before it).", "",
                  "| pipeline | utterances | WER | first partial: median | p90 | first final: median | p90 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in res["latency"]:
            lines.append(f"| {r['pipeline']} | {r['n_utts']} | {_pct(r['wer'])} | {r['first_partial_median_s']:.2f} s | "
                         f"{r['first_partial_p90_s']:.2f} s | {r['first_final_median_s']:.2f} s | {r['first_final_p90_s']:.2f} s |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--bundle")
    ap.add_argument("--per-voice", type=int, help="evaluate a per-voice sample of the split (default: all of it)")
    ap.add_argument("--latency-per-voice", type=int, default=20, help="the latency sample, per voice")
    ap.add_argument("--silence-minutes", type=float, default=60.0)
    ap.add_argument("--wheel", help="silero-vad's wheel: compare its ONNX graphs")
    ap.add_argument("--grid", action="append", default=[], metavar="K=V,K=V",
                    help="another gate policy to evaluate (sections 4-5); repeatable")
    ap.add_argument("--sections", default="models,silence,frames,eval,streams,latency")
    ap.add_argument("--out", help="prefix: OUT.json and OUT.md")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    grid = [{k: float(v) for k, v in (kv.split("=") for kv in g.split(","))} for g in args.grid]
    manifest = Path(args.corpus) / f"{args.split}.jsonl"
    utts = read_manifest(manifest)
    pipes = pipelines(args.bundle, grid)
    res: dict[str, Any] = {"args": vars(args), "manifest": str(manifest),
                           "command": "scripts/bench_vad.py " + " ".join(sys.argv[1:]),
                           "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"}
    if "models" in sections and args.wheel:
        x = np.concatenate([load_audio(audio_path(manifest, u), SR) for u in select(utts, None, 1)])
        res["model_signal_s"] = len(x) / SR
        res["models"] = model_table(Path(args.wheel), x)
    if "silence" in sections:
        res["silence"] = silence_rows(pipes, args.silence_minutes)
    if "frames" in sections:
        res["frames"] = frame_rows(pipes[1][1].vad, manifest, select(utts, None, args.per_voice), args.silence_minutes)
    if "eval" in sections:
        res["eval"] = eval_rows(pipes, manifest, select(utts, None, args.per_voice))
    streams = Path(args.corpus) / "streams" / f"{args.split}.jsonl"
    if "streams" in sections and streams.exists():
        res["streams"] = stream_rows(pipes, streams)
    if "latency" in sections:
        res["latency"] = latency_rows(pipes, manifest, select(utts, None, args.latency_per_voice))
    md = to_markdown(res)
    print(md)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(res, indent=1) + "\n")
        Path(args.out + ".md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
