#!/usr/bin/env python
"""Partials (issue 25): see runtime/partials_eval.py.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_partials.py --student exp/student/onnx --corpus data/c14k \\
        --configs "encoder=whisper,update_chunks=2;encoder=student,update_chunks=2,pad_s=2.0" --out docs/partials_bench
"""
from corpus.tts import VOICES
from runtime.partials_eval import main

if __name__ == "__main__":
    raise SystemExit(main(heldout_voices=frozenset(v for v, voice in VOICES.items() if voice.heldout)))
