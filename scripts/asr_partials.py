#!/usr/bin/env python
"""Record a bundle's streaming ASR partial hypotheses for test utterances, in the format of
`scripts/bench_tagger.py --partials`: one line per utterance, `{"id", "partials": [[word, ...], ...]}`,
every partial the stream emitted (revisions included) as the whole word sequence heard so far,
the last one the final result. Feeds 100 ms pieces, as a microphone would.
With `--final-only`, one `{"id", "text"}` line per utterance instead: the recognised text, the
format of `heed train tagger --asr-hypotheses` (run it on the training split for that).

    .venv/bin/python scripts/asr_partials.py --bundle models/default --corpus data/c14k \
        --source assistant --out exp/partials_assistant.jsonl
    .venv/bin/python scripts/asr_partials.py --bundle models/default --corpus data/c14k \
        --split train --source atis,assistant --final-only --out exp/hyps_train.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def partial_words(events: list[dict]) -> list[list[str]]:
    """Word sequences of a file's events: earlier endpointed segments stay in front of later
    partials; the last event (the whole-file result) closes the list."""
    done: list[str] = []
    out: list[list[str]] = []
    for ev in events[:-1]:
        words = [w["word"] for w in ev.get("words", [])]
        seq = done + words
        if seq and (not out or seq != out[-1]):
            out.append(seq)
        if ev.get("final"):
            done = seq
    final = [w["word"] for w in events[-1].get("words", [])]
    out.append(final if final else ["<empty>"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--corpus", default="data/c14k")
    ap.add_argument("--split", default="test")
    ap.add_argument("--source", default="assistant", help="only utterances of these text sources (comma-separated)")
    ap.add_argument("--final-only", action="store_true", help='write {"id", "text"} of the final result only')
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline
    from runtime.transcribe import stream_file

    pipe = Pipeline.from_bundle(args.bundle, threads=1)
    manifest = Path(args.corpus) / f"{args.split}.jsonl"
    utts = [u for u in read_manifest(manifest) if u.source in args.source.split(",") and u.tags]
    from tqdm import tqdm

    with open(args.out, "w", encoding="utf-8") as f:
        for u in tqdm(utts, desc=args.split, unit="utt"):
            events = list(stream_file(pipe, load_audio(audio_path(manifest, u), pipe.sample_rate)))
            line = {"id": u.id, "text": events[-1]["text"]} if args.final_only \
                else {"id": u.id, "partials": partial_words(events)}
            f.write(json.dumps(line) + "\n")
    print(f"{len(utts)} utterances -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
