"""`heed corpus streams`: continuous recordings for streaming, endpointing and intended-query tests.

Utterances of one split, directed and undirected mixed, are joined with pauses of low-level
background noise (never digital zero, which no microphone produces and which would make
endpointing trivially easy) into recordings of `min_s` to `max_s` seconds. Utterance samples are
copied unchanged (int16 throughout), so a segment of a stream equals its source WAV exactly
when the rates agree.

Written under DIR/streams/:

- `<split>/<id>.wav`: 16 kHz mono PCM16.
- `<split>/<id>.json`: the timeline: {"id", "audio" (relative to the timeline's folder),
  "duration", "sample_rate", "segments": [{"utt_id", "start", "end" (placement in the stream, s),
  "speech_start", "speech_end" (absolute in the stream, s; absent where the manifest lacks
  them), "directed", "text", "tags", "intent", "voice", "source"}]}.
- `<split>.jsonl`: the index, one line per stream: {"id", "audio", "duration", "sample_rate",
  "timeline", "n_segments"}, paths relative to DIR/streams. Written last, atomically, so it never
  names a file that is not there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from runtime.manifest import Utterance, audio_path, read_manifest

SAMPLE_RATE = 16000
PAUSE_S = (0.5, 4.0)
# RMS of the background noise in the pauses, dBFS; one level per stream.
NOISE_DBFS = (-65.0, -50.0)


def load_mono_int16(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a WAV as int16 mono at `sample_rate`; stereo is averaged, other rates resampled.

    Returns:
        samples: (T,) int16. A mono file at `sample_rate` comes back bit-exact.
    """
    from runtime.audio import read_audio

    x, sr = read_audio(path, dtype="int16")  # (T, n_channels)
    if x.shape[1] == 1 and sr == sample_rate:
        return x[:, 0]
    y = x.astype(np.float64).mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = gcd(sample_rate, sr)
        y = resample_poly(y, sample_rate // g, sr // g)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def background_noise(n_samples: int, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Low-level noise with a falling spectrum (white noise through a one-pole low-pass).

    Returns:
        noise: (n_samples,) int16.
    """
    from scipy.signal import lfilter

    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n_samples))
    rms = float(np.sqrt(np.mean(x**2))) if n_samples else 1.0
    x *= 32768 * 10 ** (level_dbfs / 20) / max(rms, 1e-12)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _segment(u: Utterance, start_n: int, n_samples: int) -> dict[str, Any]:
    start_s = start_n / SAMPLE_RATE
    seg: dict[str, Any] = {"utt_id": u.id, "start": start_s, "end": (start_n + n_samples) / SAMPLE_RATE}
    if u.speech_start is not None and u.speech_end is not None:
        seg["speech_start"] = start_s + u.speech_start
        seg["speech_end"] = start_s + u.speech_end
    seg.update(directed=u.directed, text=u.text, tags=u.tags, intent=u.intent, voice=u.voice, source=u.source)
    return seg


def compose_stream(manifest: Path, pools: dict[bool, list[Utterance]], rng: np.random.Generator,
                   min_s: float, max_s: float, directed_share: float = 0.5) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One stream: pause, utterance, pause, ... until the next utterance would pass a random length.

    Each slot draws its class with P(directed) = `directed_share` (the other class when one runs
    out) and takes the next utterance of that class's shuffled pool, so no utterance repeats.
    The tail is background noise up to the drawn length.

    Returns:
        samples: (T,) int16 at SAMPLE_RATE, min_s <= T / SAMPLE_RATE <= max_s.
        segments: placement of each utterance, in order (see the module docstring).
    """
    target_n = int(rng.uniform(min_s, max_s) * SAMPLE_RATE)
    level_dbfs = rng.uniform(*NOISE_DBFS)
    queues = {k: [v[i] for i in rng.permutation(len(v))] for k, v in pools.items()}
    pieces: list[np.ndarray] = []
    segments: list[dict[str, Any]] = []
    n = 0
    while queues[True] or queues[False]:
        directed = bool(rng.random() < directed_share)
        if not queues[directed]:
            directed = not directed
        u = queues[directed].pop()
        pause_n = int(rng.uniform(*PAUSE_S) * SAMPLE_RATE)
        audio = load_mono_int16(audio_path(manifest, u))
        if n + pause_n + len(audio) > target_n:
            break
        pieces.append(background_noise(pause_n, level_dbfs, rng))
        segments.append(_segment(u, n + pause_n, len(audio)))
        pieces.append(audio)
        n += pause_n + len(audio)
    else:
        # The split ran out of utterances: end after one more pause, but not before min_s.
        target_n = max(int(min_s * SAMPLE_RATE), min(target_n, n + int(rng.uniform(*PAUSE_S) * SAMPLE_RATE)))
    pieces.append(background_noise(target_n - n, level_dbfs, rng))
    return np.concatenate(pieces), segments


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_streams(corpus_dir: Path, split: str, n_streams: int, seed: int,
                  min_s: float = 30.0, max_s: float = 120.0) -> list[Path]:
    """Write `n_streams` recordings of `split` under DIR/streams/ (see the module docstring).

    Deterministic for a seed: stream i draws from numpy's generator seeded with (seed, i).

    Returns:
        the timeline paths, in index order.
    """
    import soundfile as sf

    if not 0 < min_s <= max_s:
        raise ValueError(f"need 0 < min_s <= max_s, got {min_s}, {max_s}")
    corpus_dir = Path(corpus_dir)
    manifest = corpus_dir / f"{split}.jsonl"
    utts = [u for u in read_manifest(manifest) if u.audio is not None and u.directed is not None]
    pools = {d: [u for u in utts if u.directed is d] for d in (True, False)}
    if not pools[True] or not pools[False]:
        raise ValueError(f"{manifest}: streams need directed and undirected utterances, "
                         f"found {len(pools[True])} and {len(pools[False])}")
    root = corpus_dir / "streams"
    out = root / split
    out.mkdir(parents=True, exist_ok=True)
    index: list[str] = []
    timelines: list[Path] = []
    for i in range(n_streams):
        stream_id = f"{split}-{i:04d}"
        samples, segments = compose_stream(manifest, pools, np.random.default_rng([seed, i]), min_s, max_s)
        wav = out / f"{stream_id}.wav"
        tmp = wav.with_name(wav.name + ".tmp")
        sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, wav)
        duration = len(samples) / SAMPLE_RATE
        timeline = {"id": stream_id, "audio": wav.name, "duration": duration, "sample_rate": SAMPLE_RATE,
                    "segments": segments}
        path = out / f"{stream_id}.json"
        _write_text_atomic(path, json.dumps(timeline, ensure_ascii=False, indent=1) + "\n")
        timelines.append(path)
        index.append(json.dumps({
            "id": stream_id, "audio": f"{split}/{wav.name}", "duration": duration, "sample_rate": SAMPLE_RATE,
            "timeline": f"{split}/{path.name}", "n_segments": len(segments),
        }))
    _write_text_atomic(root / f"{split}.jsonl", "".join(line + "\n" for line in index))
    return timelines


def add_streams_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `heed corpus streams DIR [--split test] [--n 10] [--seed 0] [--min-s 30] [--max-s 120]`."""
    p = subparsers.add_parser("streams", help="join utterances of a split into continuous recordings")
    p.add_argument("dir", type=Path, help="corpus folder holding <split>.jsonl")
    p.add_argument("--split", default="test", help="the split whose utterances are joined")
    p.add_argument("--n", type=int, default=10, help="number of streams")
    p.add_argument("--seed", type=int, default=0, help="random seed of the utterances picked and the pauses")
    p.add_argument("--min-s", type=float, default=30.0, help="shortest stream, seconds")
    p.add_argument("--max-s", type=float, default=120.0, help="longest stream, seconds")
    p.set_defaults(func=_run_streams)


def _run_streams(args: argparse.Namespace) -> int:
    try:
        paths = build_streams(args.dir, args.split, args.n, args.seed, args.min_s, args.max_s)
    except ValueError as e:  # ManifestError included
        print(f"heed corpus streams: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(paths)} streams and {args.dir / 'streams' / (args.split + '.jsonl')}")
    return 0
