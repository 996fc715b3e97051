"""Measuring partials: what the streaming pass showed, when it committed, whether it retracted.

`stream_clip` plays a clip through a `PartialStream` in blocks as a microphone would and records
every event; `clip_metrics` turns that, with the reference words and their end times (from a
forced alignment, `align_words_pocketsphinx`), into the numbers of docs/partials.md:

- partial WER: the last hypothesis of each segment (over all of its audio, before any second pass);
- retractions: committed words that changed later in the segment (must be 0);
- committed at the endpoint: the share of the last hypothesis's words committed before the end;
- commit delay: from a reference word's end to the moment the word the hypothesis has for it was
  committed (words first committed at the segment's end count from the end of the audio);
- first commit: from the first reference word's start to the first committed word.
"""
from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.evaluate import non_speech_cases
from runtime.partials import PartialStream, SegmentResult
from runtime.whisper import SAMPLE_RATE, cut_at_pauses


@dataclass
class ClipRun:
    segments: list[tuple[float, SegmentResult]]  # (start time in the clip, result)
    compute_s: float
    duration_s: float
    retractions: int = 0
    commits: list[tuple[str, float]] = field(default_factory=list)  # (word, time committed), in order

    @property
    def text(self) -> str:
        return " ".join(r.text for _, r in self.segments if r.text)


def segment_bounds(samples: np.ndarray, max_samples: int) -> list[tuple[int, int]]:
    """Where a clip's segments lie: the whole clip, or pieces cut at its quietest moments when it
    is longer than a segment may be (as the second pass cuts; the endpointer's stand-in here)."""
    if len(samples) <= max_samples:
        return [(0, len(samples))]
    out, start = [], 0
    for piece in cut_at_pauses(samples, max_samples):
        out.append((start, start + len(piece)))
        start += len(piece)
    return out


def stream_clip(stream: PartialStream, samples: np.ndarray, block_s: float = 0.16) -> ClipRun:
    """Feed a clip in blocks as a microphone would; record commits (word, stream time) and retractions.
    A stream without a VAD gets its segments ended at `segment_bounds`."""
    block = int(block_s * SAMPLE_RATE)
    segs: list[tuple[float, SegmentResult]] = []
    commits: list[tuple[str, float]] = []
    retractions = 0
    fixed: list[str] = []
    start = 0.0
    bounds = [(0, len(samples))] if stream.vad is not None else \
        segment_bounds(samples, int(stream.cfg.max_segment_s * SAMPLE_RATE))

    def take(events: list) -> None:
        nonlocal fixed, retractions, start
        for ev in events:
            words = ev.text.split()
            if words[: len(fixed)] != fixed:
                retractions += 1
            if isinstance(ev, SegmentResult):
                commits.extend((w, ev.end_s) for w in words[len(fixed) :])  # committed by the endpoint
                segs.append((start, ev))
                fixed, start = [], ev.end_s
            else:
                commits.extend((w, ev.time_s) for w in words[len(fixed) : ev.committed])
                fixed = fixed + words[len(fixed) : ev.committed]

    t0 = time.perf_counter()
    for a, b in bounds:
        for i in range(a, b, block):
            take(stream.accept_waveform(samples[i : min(b, i + block)]))
        take(stream.input_finished() if stream.vad is not None else [stream.end_segment()])
    return ClipRun(segs, time.perf_counter() - t0, len(samples) / SAMPLE_RATE, retractions, commits)


def clip_metrics(run: ClipRun, ref_words: list[str], ref_times: list[tuple[float, float]] | None) -> dict[str, Any]:
    """Delays of one clip's commits against its reference words' times (None: no alignment)."""
    hyp = [w for w, _ in run.commits]
    last_words = run.text.split()
    streaming_committed = sum(r.committed for _, r in run.segments)
    out: dict[str, Any] = {"hyp_words": len(last_words), "committed_before_end": streaming_committed,
                           "retractions": run.retractions, "delays": [], "delays_streaming": [], "first_commit": None}
    if ref_times is None:
        return out
    matcher = difflib.SequenceMatcher(a=ref_words, b=hyp, autojunk=False)
    # which commits are streaming ones: per segment, the first `committed` commits of that segment
    stream_idx: set[int] = set()
    k = 0
    for _, r in run.segments:
        words = r.text.split()
        stream_idx.update(range(k, k + r.committed))
        k += len(words)
    for block in matcher.get_matching_blocks():
        for j in range(block.size):
            ref_end = ref_times[block.a + j][1]
            t = run.commits[block.b + j][1]
            out["delays"].append(t - ref_end)
            if block.b + j in stream_idx:
                out["delays_streaming"].append(t - ref_end)
    if run.commits and ref_times:
        out["first_commit"] = run.commits[0][1] - ref_times[0][0]
    return out


def align_words_pocketsphinx(samples: np.ndarray, words: list[str]) -> list[tuple[float, float]] | None:
    """(start, end) seconds of each reference word by PocketSphinx's forced alignment (its en-US
    acoustic model and dictionary), or None when it cannot align them (a word not in its
    dictionary, or no path)."""
    from pocketsphinx import Decoder

    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    d = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    try:
        d.set_align_text(" ".join(words))
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        segs = [s for s in d.seg() if not s.word.startswith(("<", "["))]
    except (RuntimeError, ValueError, KeyError):
        return None
    if len(segs) != len(words):
        return None
    return [(s.start_frame / 100.0, (s.end_frame + 1) / 100.0) for s in segs]


# ---------------------------------------------------------------- the benchmark (scripts/bench_partials.py)


def _median(xs: list[float]) -> float | None:
    return float(np.median(xs)) if xs else None


def measure_set(partials: Any, clips: list[tuple[str, str, np.ndarray]], times: dict[str, Any]) -> dict[str, Any]:
    """Partials over (id, reference, samples) clips -> pooled WER, commits, delays, speed."""
    from runtime.evaluate import pooled_wer

    pairs, delays, stream_delays, firsts = [], [], [], []
    committed = words = retractions = 0
    compute = audio = 0.0
    rows = []
    for cid, ref, x in clips:
        run = stream_clip(partials.stream(), x)
        pairs.append((ref, run.text))
        m = clip_metrics(run, ref.split(), times.get(cid))
        delays += m["delays"]
        stream_delays += m["delays_streaming"]
        if m["first_commit"] is not None:
            firsts.append(m["first_commit"])
        committed += m["committed_before_end"]
        words += m["hyp_words"]
        retractions += m["retractions"]
        compute += run.compute_s
        audio += run.duration_s
        rows.append({"id": cid, "ref": ref, "hyp": run.text, "committed_before_end": m["committed_before_end"]})
    return {"n_clips": len(clips), "audio_min": round(audio / 60, 2), "wer": pooled_wer(pairs),
            "retractions": retractions, "committed_share_at_endpoint": committed / words if words else None,
            "commit_delay_median_s": _median(delays), "commit_delay_streaming_median_s": _median(stream_delays),
            "n_delays": len(delays), "first_commit_median_s": _median(firsts), "rtf": compute / audio,
            "clips": rows}


def main(argv: list[str] | None = None, heldout_voices: frozenset[str] = frozenset()) -> int:
    """scripts/bench_partials.py: partials (Whisper's decoder over the streaming student's states,
    or over Whisper's encoder re-reading the segment) on the real dev set and a sample of the
    synthetic test split's held-out voices, beside the second pass (Whisper with the whole
    segment) and PocketSphinx on the same files; words on non-speech. heldout_voices: the
    corpus's voices held out of training (the script passes corpus.tts's)."""
    import argparse
    import json
    import os
    import platform
    import sys
    from pathlib import Path

    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio
    from runtime.bench import write_report
    from runtime.evaluate import pooled_wer
    from runtime.partials import Partials, PartialsConfig
    from runtime.whisper import SecondPass, to_spoken

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--student", default="", help="folder of `heed export student` (for encoder=student configs)")
    ap.add_argument("--whisper", default="models/default/whisper", help="the second pass's folder (its decoder)")
    ap.add_argument("--real", default="data/real", help="folder of `heed corpus import realspeech`")
    ap.add_argument("--corpus", default="", help="a synthetic corpus with a test split (held-out voices)")
    ap.add_argument("--per-voice", type=int, default=5)
    ap.add_argument("--configs", default="encoder=whisper,update_chunks=2",
                    help="';'-separated settings to compare: encoder=whisper|student and PartialsConfig's (k=v,k=v)")
    ap.add_argument("--precision", default="int8", choices=("fp32", "int8"))
    ap.add_argument("--bundle", default="models/default", help="whose VAD gates the audio (bundle.json `vad`)")
    ap.add_argument("--no-vad", action="store_true", help="decode everything; segments end at the clips' ends")
    ap.add_argument("--out", default="docs/partials_bench")
    args = ap.parse_args(argv)

    second = SecondPass.from_dir(args.whisper, threads=1)
    vad = None
    if not args.no_vad:
        from runtime.vad import VadModel

        entry = json.loads((Path(args.bundle) / "bundle.json").read_text())["vad"]
        vad = VadModel.from_entry(Path(args.bundle) / entry["file"], entry, threads=1)
    manifest = Path(args.real) / "dev.jsonl"
    utts = read_manifest(manifest)
    real = [(u.id, u.text, load_audio(audio_path(manifest, u))) for u in utts]
    times: dict[str, Any] = {}
    try:
        times = {cid: align_words_pocketsphinx(x, ref.split()) for cid, ref, x in real}
    except ImportError:
        print("pocketsphinx is not installed (pip install pocketsphinx): no delays", file=sys.stderr)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": 1,
        "command": "scripts/bench_partials.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "aligned_clips": sum(t is not None for t in times.values()), "vad": vad is not None, "configs": {}}
    for spec in args.configs.split(";"):
        settings = dict(kv.split("=") for kv in spec.split(",") if kv)
        encoder = settings.pop("encoder", "whisper")
        if encoder not in ("whisper", "student") or (encoder == "student" and not args.student):
            ap.error(f"{spec}: encoder=whisper, or encoder=student with --student")
        cfg = PartialsConfig.from_dict({k: float(v) if "." in v else int(v) for k, v in settings.items()})
        partials = Partials(second, args.student if encoder == "student" else None, cfg, threads=1,
                            precision=args.precision, vad=vad)
        row = {"real_dev": measure_set(partials, real, times)}
        print(f"{spec}: real dev partial WER {row['real_dev']['wer']:.3f}", file=sys.stderr, flush=True)
        if args.corpus:
            from runtime.evaluate import select

            test = Path(args.corpus) / "test.jsonl"
            held = [u for u in select(read_manifest(test), None, args.per_voice) if u.voice in heldout_voices]
            row["held_out_voices"] = measure_set(partials, [(u.id, u.text, load_audio(audio_path(test, u)))
                                                            for u in held], {})
        row["non_speech_words"] = {}
        for name, x in non_speech_cases().items():
            run = stream_clip(partials.stream(), x)
            row["non_speech_words"][name] = sum(len(e.text.split()) for _, r in run.segments for e in r.events) + \
                len(run.text.split())
        result["configs"][spec] = row
    # the peers on the same files: Whisper with the whole segment (the second pass), PocketSphinx
    result["whisper_second_pass_wer"] = pooled_wer((ref, to_spoken(second.read(x)[0].text)) for _, ref, x in real)
    try:
        from pocketsphinx import Decoder

        def sphinx(x: np.ndarray) -> str:
            d = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
            d.start_utt()
            d.process_raw((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
            d.end_utt()
            return d.hyp().hypstr if d.hyp() else ""

        result["pocketsphinx_wer"] = pooled_wer((ref, sphinx(x)) for _, ref, x in real)
    except ImportError:
        result["pocketsphinx_wer"] = None
    write_report(Path(args.out), result, to_markdown(result))
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _sec(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


def to_markdown(r: dict[str, Any]) -> str:
    lines = ["# Partials of the streaming student: benchmark", "",
             f"Command: `{r['command']}`; {r['machine']}, one thread. Real dev set: {r['aligned_clips']} clips "
             "with PocketSphinx word times (forced alignment) for the delays; "
             f"{'the bundle VAD gates the audio and ends segments' if r['vad'] else 'no VAD: a clip is a segment'}.", "",
             "| config | partial WER (real dev) | retractions | committed at the endpoint | commit delay (all / "
             "streaming commits) | first commit after speech start | RTF | held-out voices WER | words on non-speech |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for spec, row in r["configs"].items():
        d = row["real_dev"]
        held = row.get("held_out_voices", {}).get("wer")
        lines.append(f"| {spec} | {_pct(d['wer'])} | {d['retractions']} | {_pct(d['committed_share_at_endpoint'])} | "
                     f"{_sec(d['commit_delay_median_s'])} / {_sec(d['commit_delay_streaming_median_s'])} | "
                     f"{_sec(d['first_commit_median_s'])} | {d['rtf']:.3f} | {_pct(held)} | "
                     f"{sum(row['non_speech_words'].values())} |")
    lines += ["", f"Same files: Whisper tiny.en with the whole segment (the second pass) {_pct(r['whisper_second_pass_wer'])}; "
              f"PocketSphinx (its en-US model) {_pct(r['pocketsphinx_wer'])}.", ""]
    return "\n".join(lines)
