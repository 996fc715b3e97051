"""`heed demo`: stream the bundle's example recordings through it, with a live view.

Each example is fed in 100 ms pieces at the pace a microphone would deliver it (`--fast` feeds
as fast as the CPU allows). The view shows the partial hypothesis as it changes (the words it
committed, which will not change until the final, in brackets), each word's
slot tag, the intent and the directedness decision when the bundle has a tagger and an IQD, and
the final result of each recording next to what was said. On a terminal the view redraws in
place (rich); otherwise, or with `--plain`, it prints one line per change, which is what the
README shows and the tests read.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from runtime.cli import NO_SECOND_PASS_HELP, STREAM_PARTIALS_HELP, THREADS_HELP, positive_int

PIECE_MS = 100.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="stream the bundled example recordings through the default bundle",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="model bundle folder (default: models/default)")
    p.add_argument("--fast", action="store_true", help="no real-time pacing: as fast as the CPU allows")
    p.add_argument("--plain", action="store_true", help="one line per change instead of the live view")
    p.add_argument("--threads", type=positive_int, default=1, help=THREADS_HELP)
    p.add_argument("--no-vad", action="store_true", help="decode all audio: leave out the bundle's voice-activity detector (silence and noise then reach the ASR)")
    p.add_argument("--no-second-pass", action="store_true", help=NO_SECOND_PASS_HELP)
    p.add_argument("--stream-partials", action="store_true", help=STREAM_PARTIALS_HELP)
    p.set_defaults(func=run)


@dataclass
class Example:
    path: Path
    text: str | None = None  # what was said, when the bundle's examples.jsonl knows
    directed: bool | None = None
    speech_start: float | None = None  # s; heed bench measures latencies from these
    speech_end: float | None = None


def load_examples(bundle_path: Path) -> list[Example]:
    """The recordings listed in BUNDLE/examples/examples.jsonl, or every WAV in that folder."""
    folder = bundle_path / "examples"
    index = folder / "examples.jsonl"
    if index.exists():
        out = []
        for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(Example(folder / d["audio"], d.get("text"), d.get("directed"),
                                   d.get("speech_start"), d.get("speech_end")))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{index}:{n}: not an example record ({e})") from None
        return out
    return [Example(p) for p in sorted(folder.glob("*.wav"))]


@dataclass
class View:
    """What the live view shows for the recording being played; pure data, rendered by `lines`."""

    name: str
    reference: str | None = None
    t: float = 0.0
    partial: dict[str, Any] = field(default_factory=dict)
    finals: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.name}  ({self.t:5.2f} s)"]
        if self.reference:
            out.append(f"  said:      {self.reference}")
        for ev in self.finals:
            out.append(f"  final:     {describe(ev)}")
        if self.partial and self.partial.get("text"):
            out.append(f"  partial:   {describe(self.partial)}")
        return out


def describe(ev: dict[str, Any]) -> str:
    """One line for an event: words (with their slot tags; a partial's committed words in brackets),
    which pass wrote a final, intent, slots, directedness."""
    shown = [w["word"] + (f"/{w['tag']}" if w.get("tag") not in (None, "O") else "") for w in ev.get("words", [])]
    n = ev.get("committed") or 0
    if 0 < n < len(shown):  # the words that will not change until the final, in brackets
        shown = [f"[{' '.join(shown[:n])}]"] + shown[n:]
    elif n and n == len(shown):
        shown = [f"[{' '.join(shown)}]"]
    words = " ".join(shown)
    parts = [words or "(nothing yet)"]
    if ev.get("pass") == "second" and ev.get("written"):
        parts.append(f"Whisper: {ev['written']!r}")
    elif ev.get("pass") == "stream":
        parts.append("the streaming pass's words")
    if ev.get("intent"):
        parts.append(f"intent={ev['intent']['label']} ({ev['intent']['probability']:.2f})")
    if ev.get("slots"):
        parts.append("slots: " + ", ".join(f"{s['slot']}={s['value']!r}" for s in ev["slots"]))
    d = ev.get("directed")
    if d:
        decided = f"{d['decision']} at {d['decided_at']:.2f} s" if d.get("decision") else "undecided"
        parts.append(f"directed p={d['probability']:.2f}, {decided}")
    return " | ".join(parts)


def play(pipe, example: Example, pace: bool, on_change: Callable[[View], None]) -> tuple[View, float, float]:
    """Stream one recording; calls on_change(view) whenever the view changes.

    Returns the final view, the audio duration (s) and the compute time spent in the pipeline (s).
    """
    from runtime.audio import load_audio

    samples = load_audio(example.path, pipe.sample_rate)
    view = View(example.path.name, example.text)
    on_change(view)
    stream = pipe.create_stream()
    step = int(pipe.sample_rate * PIECE_MS / 1000)
    start, compute = time.perf_counter(), 0.0
    for i in range(0, len(samples), step):
        if pace:  # deliver each piece when a microphone would have it
            due = start + (i + step) / pipe.sample_rate
            time.sleep(max(0.0, due - time.perf_counter()))
        c0 = time.perf_counter()
        stream.accept_waveform(samples[i : i + step], pipe.sample_rate)
        events = list(stream.events())
        compute += time.perf_counter() - c0
        view.t = (i + min(step, len(samples) - i)) / pipe.sample_rate
        _apply(view, events, on_change)
    c0 = time.perf_counter()
    stream.input_finished()
    events = list(stream.events())
    compute += time.perf_counter() - c0
    _apply(view, events, on_change)
    return view, len(samples) / pipe.sample_rate, compute


def _apply(view: View, events: list[dict[str, Any]], on_change: Callable[[View], None]) -> None:
    for ev in events:
        if ev["final"]:
            if ev.get("words") or not view.finals:  # an empty closing segment after an endpoint says nothing
                view.finals.append(ev)
            view.partial = {}
        else:
            view.partial = ev
        on_change(view)


def run(args: argparse.Namespace) -> int:
    from runtime.audio import AudioError
    from runtime.pipeline import DEFAULT_BUNDLE, BundleError, Pipeline

    bundle = Path(args.bundle) if args.bundle else DEFAULT_BUNDLE
    try:
        pipe = Pipeline.from_bundle(bundle, threads=args.threads, vad=not args.no_vad,
                                      second_pass=not args.no_second_pass,
                                      heard_partials=not args.stream_partials)
        examples = load_examples(bundle)
    except (BundleError, FileNotFoundError, ValueError) as e:
        print(f"heed demo: {e}", file=sys.stderr)
        return 1
    if not examples:
        print(f"heed demo: {bundle}/examples has no recordings; try `heed transcribe FILE --bundle {bundle}`",
              file=sys.stderr)
        return 1
    live = not args.plain and sys.stdout.isatty() and _have_rich()
    print(f"heed demo: {len(examples)} recordings through {bundle} "
          f"({'as fast as possible' if args.fast else 'at real-time pace'}; Ctrl-C stops)", flush=True)
    total_audio = total_compute = 0.0
    try:
        for ex in examples:
            try:
                view, audio_s, compute_s = _play_live(pipe, ex, not args.fast) if live else _play_plain(pipe, ex, not args.fast)
            except AudioError as e:
                print(f"heed demo: {e}", file=sys.stderr)
                return 1
            total_audio += audio_s
            total_compute += compute_s
    except KeyboardInterrupt:
        print("\nheed demo: stopped", file=sys.stderr)
        return 130
    print(f"{total_audio:.1f} s of audio, {total_compute:.2f} s of compute on {args.threads} thread(s): "
          f"real-time factor {total_compute / max(total_audio, 1e-9):.3f}", flush=True)
    return 0


def _play_plain(pipe, ex: Example, pace: bool):
    printed = {"partial": None, "finals": 0, "header": False}

    def on_change(view: View) -> None:
        if not printed["header"]:
            print("\n".join(view.lines()[:2]), flush=True)
            printed["header"] = True
        for ev in view.finals[printed["finals"]:]:
            print(f"  {ev['t']:5.2f} s  final:   {describe(ev)}", flush=True)
        printed["finals"] = len(view.finals)
        text = view.partial.get("text") if view.partial else None
        if text and text != printed["partial"]:
            print(f"  {view.partial['t']:5.2f} s  partial: {describe(view.partial)}", flush=True)
        printed["partial"] = text

    return play(pipe, ex, pace, on_change)


def _have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _play_live(pipe, ex: Example, pace: bool):
    from rich.live import Live
    from rich.text import Text

    with Live(Text(""), refresh_per_second=20, transient=False) as live:
        return play(pipe, ex, pace, lambda view: live.update(Text("\n".join(view.lines()))))
