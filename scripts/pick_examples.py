#!/usr/bin/env python
"""Copy a few test-split recordings into a bundle as its example recordings (for `heed demo`,
the README and `heed transcribe` out of the box): one per source kind, held-out voices, no heavy
noise, 16-bit WAV.

    .venv/bin/python scripts/pick_examples.py --corpus data/base --out models/default/examples
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from corpus.check import is_clean
from corpus.manifest import audio_path, read_manifest, write_manifest
from corpus.tts import VOICES

WANTED = (("assistant", True), ("atis", True), ("chatter", False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="data/base")
    ap.add_argument("--out", default="models/default/examples")
    ap.add_argument("--max-seconds", type=float, default=5.0)
    args = ap.parse_args()
    manifest = Path(args.corpus) / "test.jsonl"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    picked = []
    heldout = {v for v, voice in VOICES.items() if voice.heldout}
    for source, directed in WANTED:
        for u in read_manifest(manifest):
            if (u.source == source and u.directed is directed and u.voice in heldout and is_clean(u.augment)
                    and u.duration <= args.max_seconds and len(u.words) >= 5
                    and u.voice not in {p.voice for p in picked}
                    and "one hours" not in u.text):  # corpora built before that verbalizer fix say it
                x, sr = sf.read(audio_path(manifest, u), dtype="float32")
                name = f"{len(picked) + 1:02d}-{source}.wav"
                sf.write(out / name, np.asarray(x), sr, subtype="PCM_16")
                u.audio = name
                picked.append(u)
                break
    write_manifest(out / "examples.jsonl", picked)
    for u in picked:
        print(f"{u.audio}: {u.text} ({u.voice}, {u.duration:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
