"""`heed transcribe FILE...`: streaming decode of audio files through a bundle.

Each file is read from disk in blocks (`runtime.audio.stream_audio`: memory stays flat however
long it is) and fed to a fresh stream in pieces of `--piece-ms` (100 ms by default), as a
microphone would deliver it. A file that cannot be used is reported on stderr with its name and
the problem; the other files still get their results, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, Iterator

import numpy as np

from runtime.audio import AudioError, stream_audio
from runtime.cli import NO_SECOND_PASS_HELP, STREAM_PARTIALS_HELP, THREADS_HELP, positive_float, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("transcribe", help="streaming decode of audio files", description=__doc__)
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files, any format libsndfile reads")
    p.add_argument("--bundle", help="model bundle folder (default: models/default)")
    p.add_argument("--json", action="store_true", help="one JSON object per file (INTERFACES.md section 3)")
    p.add_argument("--partials", action="store_true", help="print every event as it happens (implies --json)")
    p.add_argument("--threads", type=positive_int, default=1, help=THREADS_HELP)
    p.add_argument("--beam", type=positive_int, help="beam width (1 = greedy); default from the bundle")
    p.add_argument("--piece-ms", type=positive_float, default=100.0, help="audio fed per call, as a microphone would")
    p.add_argument("--no-vad", action="store_true", help="decode all audio: leave out the bundle's voice-activity detector (silence and noise then reach the ASR)")
    p.add_argument("--no-second-pass", action="store_true", help=NO_SECOND_PASS_HELP)
    p.add_argument("--stream-partials", action="store_true", help=STREAM_PARTIALS_HELP)
    p.set_defaults(func=run)


def pieces(blocks: Iterable[np.ndarray], step: int) -> Iterator[np.ndarray]:
    """Blocks of samples of any lengths cut into pieces of `step` samples (the last may be shorter)."""
    rest = np.zeros(0, np.float32)
    for block in blocks:
        buf = np.concatenate([rest, block]) if len(rest) else block
        n = len(buf) - len(buf) % step
        for start in range(0, n, step):
            yield buf[start : start + step]
        rest = buf[n:]
    if len(rest):
        yield rest


def stream_file(pipe, audio: np.ndarray | Iterable[np.ndarray], piece_ms: float = 100.0,
                beam: int | None = None) -> Iterator[dict[str, Any]]:
    """All events of one recording, the last one being the final result. audio: (n,) float32 at
    the pipeline's rate, whole or as blocks (`runtime.audio.stream_audio`)."""
    stream = pipe.create_stream(beam=beam)
    step = max(1, int(pipe.sample_rate * piece_ms / 1000))
    for piece in pieces([audio] if isinstance(audio, np.ndarray) else audio, step):
        stream.accept_waveform(piece, pipe.sample_rate)
        yield from stream.events()
    stream.input_finished()
    # The closing segment's event is superseded by the result of the whole file.
    yield from list(stream.events())[:-1]
    yield stream.result()


def run(args: argparse.Namespace) -> int:
    from runtime.pipeline import BundleError, Pipeline

    try:
        pipe = Pipeline.from_bundle(args.bundle, threads=args.threads, vad=not args.no_vad,
                                      second_pass=not args.no_second_pass,
                                      heard_partials=not args.stream_partials)
    except (BundleError, FileNotFoundError) as e:
        print(f"heed transcribe: {e}", file=sys.stderr)
        return 1
    status = 0
    for name in args.files:
        try:
            for event in stream_file(pipe, stream_audio(name, pipe.sample_rate), args.piece_ms, args.beam):
                if args.partials:
                    print(json.dumps({"file": name, **event}), flush=True)
        except AudioError as e:
            print(f"heed transcribe: {e}", file=sys.stderr)
            status = 1
            continue
        if not args.partials:
            if args.json:
                print(json.dumps({"file": name, **event}), flush=True)
            else:
                print(f"{name}\t{event['text']}", flush=True)
    return status
