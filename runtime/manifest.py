"""Utterance manifests: JSON lines, one utterance per line (shared/INTERFACES.md section 1).

Paths inside a manifest are relative to the manifest's folder. Writing is atomic (a temporary
file renamed into place), so an interrupted build never leaves a manifest behind that points at
audio which is not there.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 1
SPLITS = ("train", "dev", "test")


class ManifestError(ValueError):
    """A manifest line that cannot be read; the message names the file and line."""


@dataclass
class Utterance:
    """One line of a manifest. Fields a source cannot know stay None and are not written."""

    id: str
    text: str
    words: list[str]
    split: str = "train"
    audio: str | None = None
    duration: float | None = None
    sample_rate: int | None = None
    tags: list[str] | None = None
    intent: str | None = None
    directed: bool | None = None
    speech_start: float | None = None
    speech_end: float | None = None
    voice: str | None = None
    source: str | None = None
    speaker: str | None = None
    licence: str | None = None
    augment: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        # `intent` is "str or null": a tagged source with no intent writes null, an importer omits it.
        if self.intent is None and self.tags is not None:
            d["intent"] = None
        return json.dumps(d, ensure_ascii=False)


REQUIRED = {"id": str, "text": str, "words": list}
# A text-only manifest (imported BIO files for the tagger) has no audio fields; an audio
# manifest has all three.
AUDIO_FIELDS = {"audio": str, "duration": (int, float), "sample_rate": int}
OPTIONAL = {
    **AUDIO_FIELDS, "tags": list, "intent": (str, type(None)), "directed": bool, "speech_start": (int, float),
    "speech_end": (int, float), "voice": str, "source": str, "split": str, "augment": dict,
    "speaker": str, "licence": str,
}


def parse_line(line: str, where: str) -> Utterance:
    """Parse and validate one manifest line; `where` is "file:line" for the error message."""
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(d).__name__}")
    for key in REQUIRED:
        if key not in d:
            raise ManifestError(f"{where}: missing field {key!r}")
    for key, typ in {**REQUIRED, **OPTIONAL}.items():
        if key in d and (not isinstance(d[key], typ) or isinstance(d[key], bool) and typ is not bool):
            raise ManifestError(f"{where}: field {key!r} has type {type(d[key]).__name__}")
    if d["words"] != d["text"].split(" ") and not (d["text"] == "" and d["words"] == []):
        raise ManifestError(f"{where}: 'words' is not text.split(' ')")
    if "tags" in d and len(d["tags"]) != len(d["words"]):
        raise ManifestError(f"{where}: {len(d['tags'])} tags for {len(d['words'])} words")
    n_audio = sum(k in d for k in AUDIO_FIELDS)
    if n_audio not in (0, len(AUDIO_FIELDS)):
        raise ManifestError(f"{where}: 'audio', 'duration' and 'sample_rate' come together or not at all")
    if n_audio and (d["duration"] < 0 or d["sample_rate"] <= 0):
        raise ManifestError(f"{where}: negative duration or non-positive sample_rate")
    # Fields added by later schema versions are tolerated here and not carried.
    known = set(REQUIRED) | set(OPTIONAL)
    d.setdefault("split", "train")
    return Utterance(**{k: d[k] for k in d if k in known})


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a manifest, validating every line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    out = []
    with open(path, "rb") as f:  # decoded line by line: a bad byte is named by its line
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ManifestError(f"{path}:{n}: not UTF-8 text (byte {e.start + 1} of the line)") from None
            if line.strip():
                out.append(parse_line(line, f"{path}:{n}"))
    return out


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for u in utterances:
            f.write(u.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def audio_path(manifest: str | Path, utt: Utterance) -> Path:
    """The absolute path of an utterance's audio (manifest paths are relative to its folder)."""
    if utt.audio is None:
        raise ManifestError(f"{manifest}: utterance {utt.id!r} has no audio (a text-only manifest)")
    return (Path(manifest).parent / utt.audio).resolve()


class CorpusImportError(ValueError):
    """Source data that cannot be imported; the message starts with "file:line:" where it can."""


def write_import(utts: list[Utterance], out_dir: Path, split: str) -> Path:
    """Write out_dir/<split>.jsonl with audio paths relative to out_dir; returns the path."""
    if split not in SPLITS:
        raise CorpusImportError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for u in utts:
        if u.id in seen:
            raise CorpusImportError(f"duplicate utterance id {u.id!r}")
        seen.add(u.id)
    rel = [replace(u, split=split, audio=os.path.relpath(u.audio, out_dir) if u.audio else None) for u in utts]
    path = out_dir / f"{split}.jsonl"
    write_manifest(path, rel)
    return path
