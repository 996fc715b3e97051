#!/usr/bin/env python
"""Peak memory of `heed transcribe` on a long recording: the check behind issue 20's target
(a 1-hour file in at most 250 MB).

    .venv/bin/python scripts/transcribe_rss.py --minutes 60

Writes a recording of `--minutes` minutes (the bundle's example recordings, in turn, with
seconds of quiet noise between them; 16-bit WAV at 16 kHz, written block by block) into a
temporary folder, runs `python -m runtime.cli transcribe` on it in a child process and prints
the child's peak resident set size (getrusage's ru_maxrss: the kernel's own high-water mark),
its wall time, and a line of JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np


def write_long_recording(path: Path, minutes: float, bundle: Path, rate: int = 16000) -> float:
    """The bundle's examples in turn with 1-4 s of quiet noise between them; returns the seconds written."""
    import soundfile as sf

    from runtime.audio import load_audio

    clips = [load_audio(p, rate) for p in sorted((bundle / "examples").glob("*.wav"))]
    if not clips:
        raise SystemExit(f"{bundle}/examples: no recordings to build the long file from")
    rng = np.random.default_rng(0)
    total, want = 0, int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        while total < want:
            clip = clips[(total // rate) % len(clips)]
            gap = (10 ** (-55 / 20) * rng.standard_normal(int(rng.uniform(1, 4) * rate))).astype(np.float32)
            block = np.concatenate([clip, gap])[: want - total]
            f.write(block)
            total += len(block)
    return total / rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the recording (default: %(default)s)")
    ap.add_argument("--bundle", default=str(ROOT / "models" / "default"), help="bundle to transcribe with (default: %(default)s)")
    ap.add_argument("--no-second-pass", action="store_true", help="pass --no-second-pass to heed transcribe")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        seconds = write_long_recording(wav, args.minutes, Path(args.bundle))
        t0 = time.perf_counter()
        extra = ["--no-second-pass"] if args.no_second_pass else []
        r = subprocess.run([sys.executable, "-m", "runtime.cli", "transcribe", "--bundle", args.bundle, *extra, str(wav)],
                           cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    n_words = len(r.stdout.split("\t", 1)[1].split()) if "\t" in r.stdout else 0
    print(f"heed transcribe, {seconds / 60:.1f} min of audio: peak RSS {peak_mb:.0f} MB, {wall:.0f} s wall, "
          f"{n_words} words ({platform.machine()}, {platform.python_version()}, 1 thread)")
    print(json.dumps({"audio_min": round(seconds / 60, 2), "peak_rss_mb": round(peak_mb, 1), "wall_s": round(wall, 1),
                      "n_words": n_words}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
