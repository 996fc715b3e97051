"""Synthesise the IQD's unseen-text set: hand-written sentences no corpus template or source produced.

    python scripts/unseen_text_set.py --out data/unseen [--voices 2]

The sentences are `corpus/data/unseen_text.tsv` (label, text; 40 said to the device, 40 said to a
person or read aloud), written for this check; the script refuses one that is in the corpus's
text pool (`corpus.build.load_sentences` of the build seed). Each is spoken by `--voices` of the
corpus's held-out voices in turn, with 0.5 s of a faint noise floor (-60 dBFS) before and after;
speech start and end are where the synthesiser's own output rises above -40 dB of its peak
(`corpus.augment.trim_silence`, as the corpus finds them). Writes OUT/test.jsonl (split "test",
`directed`, speech times, voice, source "unseen-directed" / "unseen-undirected") and OUT/wav/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from corpus.augment import trim_silence
from corpus.tts import SAMPLE_RATE, VOICES, available_voices, synthesize
from runtime.manifest import Utterance, write_manifest

TEXTS = Path(__file__).resolve().parent.parent / "corpus" / "data" / "unseen_text.tsv"
PAD_S = 0.5


def read_texts(path: Path = TEXTS) -> list[tuple[bool, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, text = line.split("\t")
        if label not in ("directed", "undirected"):
            raise SystemExit(f"{path}:{n}: label must be directed or undirected, got {label!r}")
        out.append((label == "directed", text.strip()))
    return out


def corpus_texts(seed: int) -> set[str]:
    """Every sentence the corpus's text sources give a build of this seed (all splits, all sources)."""
    from corpus.build import load_sentences

    return {" ".join(s.words) for by_source in load_sentences(seed).values() for pool in by_source.values() for s in pool}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--voices", type=int, default=2, help="held-out voices per sentence")
    p.add_argument("--seed", type=int, action="append", default=[],
                   help="corpus build seeds whose text pools the set must not share a sentence with (default: 0)")
    a = p.parse_args(argv)
    texts = read_texts()
    seen = set().union(*(corpus_texts(s) for s in a.seed or [0]))
    clash = [t for _, t in texts if t in seen]
    if clash:
        print(f"{len(clash)} sentences are in the corpus: {clash[:5]}", file=sys.stderr)
        return 1
    have = set(available_voices())
    voices = [v for v in VOICES.values() if v.heldout and v.id in have]
    if not voices:
        print("no held-out voice is installed (corpus.tts.VOICES)", file=sys.stderr)
        return 1
    out = Path(a.out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    utts, k = [], 0
    for i, (directed, text) in enumerate(texts):
        for j in range(a.voices):
            voice = voices[k % len(voices)].id
            k += 1
            x = synthesize(voice, text)
            s, e = trim_silence(x, SAMPLE_RATE)
            pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
            y = np.concatenate([pad, x, pad])
            y = (y + rng.normal(0, 10 ** (-60 / 20), len(y))).astype(np.float32)
            uid = f"unseen-{i:03d}-{j}"
            sf.write(out / "wav" / f"{uid}.wav", y, SAMPLE_RATE, subtype="PCM_16")
            utts.append(Utterance(uid, text, text.split(), "test", f"wav/{uid}.wav", round(len(y) / SAMPLE_RATE, 3),
                                  SAMPLE_RATE, directed=directed, speech_start=round(PAD_S + s / SAMPLE_RATE, 3),
                                  speech_end=round(PAD_S + e / SAMPLE_RATE, 3), voice=voice,
                                  source="unseen-directed" if directed else "unseen-undirected"))
    write_manifest(out / "test.jsonl", utts)
    print(f"{len(utts)} utterances ({sum(u.directed for u in utts)} directed) by {len(voices)} held-out voices -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
