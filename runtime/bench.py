"""`heed bench`: speed, latency and memory of the whole streaming pipeline on this machine.

Audio: the bundle's example recordings (or --audio FILE...), each followed by 1.5 s of silence
so that the endpointer closes it as it would live, looped to --seconds per stream.

- real-time factor with 1, 2, 4 and 8 concurrent streams, one Python thread each, sharing one
  Pipeline: wall time over the audio time of one stream (at most 1 = every stream keeps up);
- per-chunk compute (features, encoder, search) p50 and p95 from one stream;
- time to first partial: audio time of the first partial event after speech starts, plus the
  compute it took; time from the end of speech to the final result, likewise;
- the ASR alone (no tagger, no IQD) on the same audio and one stream: our runtime next to
  sherpa-onnx's OnlineRecognizer on the same ONNX graphs (when sherpa_onnx is importable; the
  report says so when it is not): real-time factor and per-chunk compute (encoder + search);
- peak resident memory of this process, and the bundle's size on disk;
- with --hour: one stream fed an hour of audio, resident memory sampled every 10 minutes of
  audio; growth is the last sample minus the one at 10 minutes.
Prints the markdown; with --out PREFIX also writes PREFIX.json and PREFIX.md (nothing is
written into the current folder unasked).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from runtime.cli import STREAM_PARTIALS_HELP, THREADS_HELP, positive_float, positive_int

PIECE = 1600  # 100 ms at 16 kHz, as a microphone delivers it
TAIL_S = 1.5


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="speed, latency and memory figures", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="model bundle folder (default: models/default)")
    p.add_argument("--audio", nargs="+", metavar="FILE", help="recordings to use (default: the bundle's examples)")
    p.add_argument("--streams", default="1,2,4,8", help="concurrent stream counts to measure")
    p.add_argument("--seconds", type=positive_float, default=30.0, help="audio per stream in each concurrency run")
    p.add_argument("--threads", type=positive_int, default=1, help=THREADS_HELP)
    p.add_argument("--hour", action="store_true", help="also feed one stream an hour of audio and watch memory")
    p.add_argument("--stream-partials", action="store_true", help=STREAM_PARTIALS_HELP)
    p.add_argument("--out", help="also write OUT.json and OUT.md (default: print the markdown only)")
    p.set_defaults(func=run)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _clips(pipe, bundle: Path, files: list[str] | None) -> list[tuple[np.ndarray, float | None, float | None]]:
    """(samples with TAIL_S of silence appended, speech start s, speech end s) per recording."""
    from runtime.audio import load_audio
    from runtime.demo import Example, load_examples

    examples = [Example(Path(f)) for f in files] if files is not None else load_examples(bundle)
    out = []
    for ex in examples:
        x = load_audio(ex.path, pipe.sample_rate)
        end = ex.speech_end if ex.speech_end is not None else len(x) / pipe.sample_rate
        out.append((np.concatenate([x, np.zeros(int(TAIL_S * pipe.sample_rate), np.float32)]), ex.speech_start, end))
    return out


def _loop(clips, seconds: float, rate: int) -> np.ndarray:
    xs, total, i = [], 0, 0
    while total < seconds * rate:
        xs.append(clips[i % len(clips)][0])
        total += len(xs[-1])
        i += 1
    return np.concatenate(xs)


def _feed(pipe, x: np.ndarray) -> tuple[list[dict[str, Any]], list[float], float]:
    """One stream through x in 100 ms pieces: events (each with the compute time until it), chunk ms, compute s."""
    s = pipe.create_stream()
    events, compute = [], 0.0
    for i in range(0, len(x), PIECE):
        t0 = time.perf_counter()
        s.accept_waveform(x[i : i + PIECE], pipe.sample_rate)
        new = list(s.events())
        compute += time.perf_counter() - t0
        for ev in new:
            events.append({**ev, "piece_end_s": (i + PIECE) / pipe.sample_rate})
    t0 = time.perf_counter()
    s.input_finished()
    events += list(s.events())
    compute += time.perf_counter() - t0
    return events, s.asr.chunk_ms, compute


def latencies(pipe, clips) -> dict[str, Any]:
    """First partial after speech start, final after speech end (audio time, s), per clip. Events
    before the speech starts (or ends) do not answer it: a recording of silence, or words made up
    in its noise, has no latency (n/a), never a negative one."""
    first, final = [], []
    for x, start, end in clips:
        events, chunk_ms, _ = _feed(pipe, x)
        step_s = float(np.median(chunk_ms)) / 1000 if chunk_ms else 0.0
        at = lambda e: e.get("piece_end_s", len(x) / pipe.sample_rate)  # noqa: E731 (input_finished's: the end)
        if start is not None:
            partials = [e for e in events if not e["final"] and e.get("words") and at(e) >= start]
            if partials:
                first.append(at(partials[0]) - start + step_s)
        if end is not None:
            finals = [e for e in events if e["final"] and e.get("words") and at(e) >= end]
            if finals:
                final.append(at(finals[0]) - end + step_s)
    med = lambda v: float(np.median(v)) if v else None  # noqa: E731
    return {"first_partial_after_speech_start_s": med(first), "final_after_speech_end_s": med(final),
            "n_clips": len(clips)}


def concurrency(pipe, clips, counts: list[int], seconds: float) -> list[dict[str, Any]]:
    x = _loop(clips, seconds, pipe.sample_rate)
    audio_s = len(x) / pipe.sample_rate
    rows = []
    for n in counts:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(lambda _: _feed(pipe, x), range(n)))
        wall = time.perf_counter() - t0
        rows.append({"streams": n, "audio_s_per_stream": round(audio_s, 2), "wall_s": round(wall, 3),
                     "rtf": wall / audio_s, "real_time": wall <= audio_s})
    return rows


def _timing(compute_s: float, cpu_s: float, audio_s: float, chunk_ms: list[float]) -> dict[str, Any]:
    """Wall-clock real-time factor and, steadier on a busy machine, this process's CPU time over the audio."""
    return {"rtf": compute_s / audio_s, "rtf_cpu": cpu_s / audio_s, "compute_s": round(compute_s, 3),
            "chunk_ms_p50": _pct(chunk_ms, 50), "chunk_ms_p95": _pct(chunk_ms, 95), "n_chunks": len(chunk_ms)}


def _pct(values: list[float], q: float) -> float | None:
    """A percentile, or None when nothing was measured (no chunk decoded: audio without speech)."""
    return float(np.percentile(values, q)) if len(values) else None


def asr_only(pipe, bundle: Path, clips, seconds: float, threads: int) -> dict[str, Any]:
    """The ASR alone on one stream, 100 ms pieces, the bundle's search: ours, then sherpa-onnx's
    OnlineRecognizer on the same graphs (runtime/sherpa.py), or why it is absent. Compute covers
    features, encoder and search; a chunk's compute covers encoder and search."""
    from runtime.asr import AsrStream
    from runtime.sherpa import SherpaAsr, sherpa_version

    x = _loop(clips, seconds, pipe.sample_rate)
    audio_s = len(x) / pipe.sample_rate
    beam = pipe.create_stream().asr.beam
    s = AsrStream(pipe.asr, beam=beam)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(x), PIECE):
        s.accept_waveform(x[i : i + PIECE])
    s.input_finished()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {"audio_s": round(audio_s, 2), "streams": 1,
                           "search": "modified_beam_search, beam %d" % beam if beam > 1 else "greedy",
                           "heed": _timing(wall, cpu, audio_s, s.chunk_ms)}
    version = sherpa_version()
    if version is None:
        out["sherpa_onnx"] = {"absent": "sherpa_onnx is not importable (pip install sherpa-onnx)"}
        return out
    try:
        sherpa = SherpaAsr.from_bundle(bundle, threads=threads, beam=beam, model=pipe.asr)
    except (ValueError, RuntimeError, KeyError) as e:
        out["sherpa_onnx"] = {"absent": f"sherpa-onnx {version} cannot load this bundle's ASR: {e}"}
        return out
    c0 = time.process_time()
    r = sherpa.decode(x, piece=PIECE)
    out["sherpa_onnx"] = {"version": version, **_timing(r.compute_s, time.process_time() - c0, audio_s, r.chunk_ms)}
    return out


def hour(pipe, clips) -> dict[str, Any]:
    """An hour of audio through one stream; resident memory every 10 minutes of audio."""
    rate = pipe.sample_rate
    x = _loop(clips, 600, rate)  # ten minutes, fed six times over
    s = pipe.create_stream()
    samples = []
    t0 = time.perf_counter()
    for rep in range(6):
        for i in range(0, len(x), PIECE):
            s.accept_waveform(x[i : i + PIECE], rate)
            for _ in s.events():
                pass
        samples.append({"audio_min": round((rep + 1) * len(x) / rate / 60, 1), "rss_mb": round(_rss_mb(), 1)})
    s.input_finished()
    return {"samples": samples, "growth_mb": samples[-1]["rss_mb"] - samples[0]["rss_mb"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def run(args: argparse.Namespace) -> int:
    from runtime.audio import AudioError
    from runtime.pipeline import DEFAULT_BUNDLE, BundleError, Pipeline

    bundle = Path(args.bundle) if args.bundle else DEFAULT_BUNDLE
    try:
        counts = [int(c) for c in args.streams.split(",") if c.strip()]
        if not counts or min(counts) < 1:
            raise ValueError
    except ValueError:
        print(f"heed bench: --streams wants positive counts like 1,2,4,8, got {args.streams!r}", file=sys.stderr)
        return 1
    try:
        pipe = Pipeline.from_bundle(bundle, threads=args.threads, heard_partials=not args.stream_partials)
        clips = _clips(pipe, bundle, args.audio)
    except (BundleError, AudioError, FileNotFoundError, ValueError) as e:
        print(f"heed bench: {e}", file=sys.stderr)
        return 1
    if not clips:
        print(f"heed bench: no audio: {bundle}/examples is empty and no --audio was given", file=sys.stderr)
        return 1
    one_events, chunk_ms, _ = _feed(pipe, _loop(clips, args.seconds, pipe.sample_rate))
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "bundle": str(bundle), "threads_per_session": args.threads, "heard_partials": pipe.partials is not None,
        "chunk_ms": {"p50": _pct(chunk_ms, 50), "p95": _pct(chunk_ms, 95),
                     "n": len(chunk_ms), "chunk_audio_ms": pipe.bundle.manifest["asr"].get("chunk_ms")},
        "latency": latencies(pipe, clips),
        "concurrency": concurrency(pipe, clips, counts, args.seconds),
        "asr_only": asr_only(pipe, bundle, clips, args.seconds, args.threads),
        "bundle_mb": sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 1e6,
    }
    if args.hour:
        result["hour"] = hour(pipe, clips)
    result["peak_rss_mb"] = _peak_rss_mb()
    if args.out:
        write_report(Path(args.out), result, to_markdown(result))
    else:
        print(to_markdown(result))
    return 0


def write_report(out: Path, result: dict[str, Any], markdown: str) -> None:
    """OUT.json and OUT.md side by side; the markdown is also printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


def to_markdown(r: dict[str, Any]) -> str:
    lat = r["latency"]
    lines = [f"# heed bench ({r['bundle']})", "",
             f"Machine: {r['machine']}; onnxruntime threads per session: {r['threads_per_session']}; partials "
             f"{'read by Whisper (bundle.json partials)' if r.get('heard_partials') else 'from the streaming pass'}.", "",
             "| concurrent streams | audio per stream | wall time | real-time factor | keeps up |",
             "|---:|---:|---:|---:|:---:|"]
    lines += [f"| {c['streams']} | {c['audio_s_per_stream']:.1f} s | {c['wall_s']:.2f} s | {c['rtf']:.3f} | "
              f"{'yes' if c['real_time'] else 'no'} |" for c in r["concurrency"]]
    c = r["chunk_ms"]
    lines += ["",
              f"- per-chunk compute ({c['chunk_audio_ms']} ms of audio per chunk): p50 {_ms(c['p50'])}, "
              f"p95 {_ms(c['p95'])} over {c['n']} chunks",
              f"- first partial after speech starts: {_s(lat['first_partial_after_speech_start_s'])}; "
              f"final result after speech ends: {_s(lat['final_after_speech_end_s'])} "
              f"(medians over {lat['n_clips']} recordings, audio time plus compute)",
              f"- peak resident memory: {r['peak_rss_mb']:.0f} MB; bundle on disk: {r['bundle_mb']:.2f} MB"]
    lines += _asr_only_markdown(r["asr_only"], r["threads_per_session"])
    if "hour" in r:
        h = r["hour"]
        lines.append(f"- one hour through one stream: resident memory {h['samples'][0]['rss_mb']:.0f} MB after "
                     f"10 min, {h['samples'][-1]['rss_mb']:.0f} MB after 60 min (growth {h['growth_mb']:+.1f} MB), "
                     f"{h['wall_s']:.0f} s of compute")
    return "\n".join(lines)


def _asr_only_markdown(a: dict[str, Any], threads: int) -> list[str]:
    row = lambda name, t: (f"| {name} | {t['rtf']:.3f} | {t['rtf_cpu']:.3f} | {_ms(t['chunk_ms_p50'])} | {_ms(t['chunk_ms_p95'])} "  # noqa: E731
                           f"| {t['n_chunks']} |")
    lines = ["", f"ASR only (sherpa-onnx has no tagger or IQD): one stream, {a['audio_s']:.1f} s of audio in 100 ms "
             f"pieces, {a['search']}, {threads} onnxruntime thread(s) per session, the same ONNX graphs.", "",
             "| decoder | real-time factor | CPU time / audio | per-chunk compute p50 | p95 | chunks |",
             "|---|---:|---:|---:|---:|---:|",
             row("heed runtime", a["heed"])]
    sh = a["sherpa_onnx"]
    if "absent" in sh:
        lines += ["", f"sherpa-onnx: absent ({sh['absent']})."]
    else:
        lines.append(row(f"sherpa-onnx {sh['version']} OnlineRecognizer", sh))
    return lines
