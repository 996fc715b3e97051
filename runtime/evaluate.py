"""`heed eval MANIFEST`: word error rate and speed of a bundle on a manifest (and its IQD, if it has one).

Every utterance is read from disk in blocks and streamed through a fresh stream in 100 ms pieces,
exactly as `heed transcribe` does, and timed (features, encoder and search: the whole pipeline,
not the reading).

Text normalization, applied to references and hypotheses alike before scoring (`normalize`):
lowercase; every character that is not a letter, a digit, an apostrophe or a space becomes a
space; runs of spaces collapse. Our corpus's references are already in spoken form (numbers in
words), so for heed's output this changes nothing; it matters for imported data.
WER is pooled: total word errors (jiwer) over total reference words, per group and overall.
With a tagger in the bundle, on utterances whose manifest has slot tags: slot F1 over (slot, value)
pairs of the final result against the reference (`runtime.tag_metrics.slot_value_f1`: a slot counts
when the recognised words of the same slot equal the reference's, wherever they are), and intent
accuracy on utterances with a reference intent. This scores the whole chain: ASR errors cost slots.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from runtime.scoring import conditions, count_errors, sample_per_voice
from runtime.manifest import ManifestError, Utterance, audio_path, read_manifest
from runtime.audio import AudioError, stream_audio
from runtime.cli import NO_SECOND_PASS_HELP, STREAM_PARTIALS_HELP, THREADS_HELP, positive_int

_NOT_WORD = re.compile(r"[^\w' ]+|_")


def normalize(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(errors, reference words) after normalization; an empty reference counts insertions only."""
    return count_errors(normalize(ref), normalize(hyp))


def pooled_wer(pairs: Iterable[tuple[str, str]]) -> float | None:
    n_err = n_ref = 0
    for ref, hyp in pairs:
        e, n = word_errors(ref, hyp)
        n_err, n_ref = n_err + e, n_ref + n
    return None if n_ref == 0 else n_err / n_ref


@dataclass
class UttResult:
    id: str
    ref: str
    hyp: str
    duration_s: float
    compute_s: float
    voice: str | None = None
    source: str | None = None
    directed: bool | None = None
    conditions: tuple[str, ...] = ()
    ref_tags: list[str] | None = None
    hyp_tags: list[str] | None = None
    ref_intent: str | None = None
    hyp_intent: str | None = None
    speech_start: float | None = None
    directed_hyp: dict[str, Any] | None = None  # the bundle's IQD result: probability, decision, decided_at


@dataclass
class EvalReport:
    manifest: str
    bundle: str
    n_utts: int
    wer: float | None
    rtf: float
    threads: int
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    results: list[UttResult] = field(default_factory=list)
    understanding: dict[str, Any] | None = None  # slot F1 and intent accuracy, when the bundle tags
    iqd: dict[str, Any] | None = None  # EER, FA/FR and latency, when the bundle has an IQD

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["results"] = [asdict(r) for r in self.results]
        return d


def _groups(results: list[UttResult]) -> dict[str, list[dict[str, Any]]]:
    keys: dict[str, Callable[[UttResult], Iterable[str]]] = {
        "voice": lambda r: [r.voice or "unknown"],
        "source": lambda r: [r.source or "unknown"],
        "condition": lambda r: list(r.conditions) or ["unknown"],
        "class": lambda r: ["unknown" if r.directed is None else ("directed" if r.directed else "undirected")],
    }
    out = {}
    for name, key in keys.items():
        members: dict[str, list[UttResult]] = {}
        for r in results:
            for k in key(r):
                members.setdefault(k, []).append(r)
        out[name] = [{"name": k, "n_utts": len(v), "n_words": sum(len(normalize(r.ref).split()) for r in v),
                      "wer": pooled_wer((r.ref, r.hyp) for r in v)} for k, v in sorted(members.items())]
    return out


def select(utts: list[Utterance], limit: int | None, per_voice: int | None, seed: int = 0) -> list[Utterance]:
    """The evaluated subset: a per-voice sample (as `heed corpus check` draws it) and/or the first `limit`."""
    import numpy as np

    if per_voice:
        utts = sample_per_voice(utts, per_voice, np.random.default_rng(seed))
    return utts[:limit] if limit else utts


def evaluate(manifest: str | Path, pipe, utts: list[Utterance] | None = None, progress: bool = False,
             beam: int | None = None) -> EvalReport:
    from runtime.transcribe import stream_file

    manifest = Path(manifest)
    utts = read_manifest(manifest) if utts is None else utts
    results, failed = [], []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(utts), desc="eval", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            bar = None
    for u in utts:
        if u.audio is None:
            failed.append({"id": u.id, "error": "no audio field"})
            continue
        n_samples, read_s = 0, 0.0

        def counted(blocks):
            """The blocks, counted; the time spent reading them is not the pipeline's."""
            nonlocal n_samples, read_s
            it = iter(blocks)
            while True:
                t = time.perf_counter()
                block = next(it, None)
                read_s += time.perf_counter() - t
                if block is None:
                    return
                n_samples += len(block)
                yield block

        t0 = time.perf_counter()
        try:
            *_, final = stream_file(pipe, counted(stream_audio(audio_path(manifest, u), pipe.sample_rate)), beam=beam)
        except AudioError as e:
            failed.append({"id": u.id, "error": str(e)})
            continue
        dt = time.perf_counter() - t0 - read_s
        hyp_tags = [w.get("tag") for w in final["words"]] if "intent" in final else None
        results.append(UttResult(u.id, u.text, final["text"], n_samples / pipe.sample_rate, dt, u.voice, u.source,
                                 u.directed, conditions(u.augment) if u.augment else (), u.tags, hyp_tags,
                                 u.intent, (final.get("intent") or {}).get("label") if "intent" in final else None,
                                 u.speech_start, final.get("directed")))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    audio_s = sum(r.duration_s for r in results)
    return EvalReport(str(manifest), str(pipe.bundle.path), len(results), pooled_wer((r.ref, r.hyp) for r in results),
                      sum(r.compute_s for r in results) / audio_s if audio_s else 0.0, pipe.threads,
                      _groups(results), failed, results, understanding(results), iqd_metrics(results))


def iqd_metrics(results: list[UttResult]) -> dict[str, Any] | None:
    """Intended-query detection on the utterances with a `directed` label: EER of the final probability,
    false accepts / rejects of the decisions, and their latency (decided_at - speech_start).
    None when the bundle has no IQD or the manifest no labels of both classes."""
    from runtime.detection_metrics import eer, fa_fr, latency_stats  # numpy only

    rs = _iqd_scored(results)
    if not rs:
        return None
    labels = [r.directed for r in rs]
    out = {"n_utts": len(rs), "eer": eer([r.directed_hyp["probability"] for r in rs], labels),
           **fa_fr([r.directed_hyp["decision"] == "directed" for r in rs], labels)}
    timed = _iqd_timed(rs)
    out.update(latency_stats([r.directed_hyp["decided_at"] for r in timed], [r.speech_start for r in timed]))
    return out


def _iqd_scored(results: list[UttResult]) -> list[UttResult]:
    """The results with a `directed` label and an IQD result; empty unless both classes occur."""
    rs = [r for r in results if r.directed is not None and r.directed_hyp]
    return rs if len({r.directed for r in rs}) == 2 else []


def _iqd_timed(rs: list[UttResult]) -> list[UttResult]:
    """Those of `rs` with a decision time and a speech start: the ones a latency can be measured on."""
    return [r for r in rs if r.speech_start is not None and r.directed_hyp.get("decided_at") is not None]


def understanding(results: list[UttResult]) -> dict[str, Any] | None:
    """Slot F1 over (slot, value) pairs and intent accuracy of the final results, on the utterances
    that have reference tags (and intents); None when the bundle gave no tags."""
    from runtime.tag_metrics import intent_accuracy, slot_value_f1  # pure python, no torch

    tagged = [r for r in results if r.ref_tags is not None and r.hyp_tags is not None]
    if not tagged:
        return None
    f1 = slot_value_f1([(r.ref.split(), r.ref_tags) for r in tagged],
                       [(r.hyp.split(), [t or "O" for t in r.hyp_tags]) for r in tagged])
    with_intent = [r for r in tagged if r.ref_intent is not None]
    return {"n_utts": len(tagged), "slot_f1": f1["f1"], "slot_precision": f1["precision"],
            "slot_recall": f1["recall"], "n_ref_slots": f1["n_ref"],
            "intent_accuracy": intent_accuracy([r.ref_intent for r in with_intent],
                                               [r.hyp_intent for r in with_intent]) if with_intent else None,
            "n_intent_utts": len(with_intent)}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def to_markdown(report: EvalReport) -> str:
    lines = [f"# heed eval: {report.manifest}", "",
             f"- bundle: {report.bundle}",
             f"- utterances: {report.n_utts} ({len(report.failed)} failed)",
             f"- WER: {_pct(report.wer)}",
             f"- real-time factor: {report.rtf:.4f} ({report.threads} thread(s), whole pipeline)"]
    u = report.understanding
    if u:
        lines.append(f"- slot F1 ((slot, value) pairs, on ASR output): {100 * u['slot_f1']:.1f} "
                     f"(P {100 * u['slot_precision']:.1f}, R {100 * u['slot_recall']:.1f}; "
                     f"{u['n_ref_slots']} reference slots in {u['n_utts']} utterances)")
        if u["intent_accuracy"] is not None:
            lines.append(f"- intent accuracy: {100 * u['intent_accuracy']:.1f}% ({u['n_intent_utts']} utterances)")
    q = report.iqd
    if q:
        lines.append(f"- intended-query detection ({q['n_utts']} utterances): EER {100 * q['eer']:.1f}% (final "
                     f"probability); decisions: FA {100 * q['fa_rate']:.1f}%, FR {100 * q['fr_rate']:.1f}%, latency "
                     f"median {q['median_s']:.2f} s, p90 {q['p90_s']:.2f} s")
    lines.append("")
    for name, rows in report.groups.items():
        lines += [f"## WER by {name}", "", f"| {name} | utterances | words | WER |", "|---|---:|---:|---:|"]
        lines += [f"| {r['name']} | {r['n_utts']} | {r['n_words']} | {_pct(r['wer'])} |" for r in rows]
        lines.append("")
    if report.failed:
        lines += ["## Failed", ""] + [f"- {f['id']}: {f['error']}" for f in report.failed] + [""]
    return "\n".join(lines)


def write_plots(report: EvalReport, out: Path) -> list[Path]:
    """PNG plots beside eval.json: WER per condition (and per voice); with an IQD, the DET curve of
    the final probability and the CDF of decision latency. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for group in ("condition", "voice"):
        rows = [r for r in report.groups.get(group, []) if r["wer"] is not None]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
        ax.barh([r["name"] for r in rows], [100 * r["wer"] for r in rows], color="tab:blue")
        ax.set_xlabel("WER (%)")
        ax.set_title(f"WER per {group} ({report.n_utts} utterances)")
        ax.invert_yaxis()
        fig.tight_layout()
        written.append(out / f"wer_by_{group}.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    rs = _iqd_scored(report.results)
    if rs:
        from runtime.detection_metrics import det_curve  # numpy only

        fa, fr, _ = det_curve([r.directed_hyp["probability"] for r in rs], [r.directed for r in rs])
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot(100 * fa, 100 * fr)
        ax.plot([0, 100], [0, 100], ":", color="gray")
        ax.set_xlabel("false accepts (%)")
        ax.set_ylabel("false rejects (%)")
        ax.set_title(f"IQD DET, final probability ({len(rs)} utterances)")
        fig.tight_layout()
        written.append(out / "iqd_det.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
        lat = sorted(r.directed_hyp["decided_at"] - r.speech_start for r in _iqd_timed(rs))
        if lat:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ax.step(lat, [(i + 1) / len(lat) for i in range(len(lat))], where="post")
            ax.set_xlabel("decision time after speech start (s)")
            ax.set_ylabel("share of decided utterances")
            ax.set_title("IQD decision latency")
            fig.tight_layout()
            written.append(out / "iqd_latency_cdf.png")
            fig.savefig(written[-1], dpi=100)
            plt.close(fig)
    return written


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="WER and speed of a bundle on a manifest", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="a JSON-lines manifest (e.g. data/base/test.jsonl)")
    p.add_argument("--bundle", help="model bundle (default: models/default)")
    p.add_argument("--out", help="folder for eval.json, eval.md and PNG plots (the plots need matplotlib)")
    p.add_argument("--limit", type=positive_int, help="only the first N utterances (after --per-voice)")
    p.add_argument("--per-voice", type=positive_int, help="a sample of N utterances per voice, drawn as heed corpus check does")
    p.add_argument("--seed", type=int, default=0, help="random seed of the --per-voice sample")
    p.add_argument("--threads", type=positive_int, default=1, help=THREADS_HELP)
    p.add_argument("--beam", type=positive_int, help="beam width (1 = greedy); default from the bundle")
    p.add_argument("--no-vad", action="store_true", help="decode all audio: leave out the bundle's voice-activity detector (silence and noise then reach the ASR)")
    p.add_argument("--no-second-pass", action="store_true", help=NO_SECOND_PASS_HELP)
    p.add_argument("--stream-partials", action="store_true", help=STREAM_PARTIALS_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.pipeline import BundleError, Pipeline

    try:
        utts = read_manifest(args.manifest)
    except (ManifestError, OSError) as e:
        print(f"heed eval: {e}", file=sys.stderr)
        return 1
    utts = select(utts, args.limit, args.per_voice, args.seed)
    if not utts:
        print(f"heed eval: {args.manifest}: no utterances to evaluate", file=sys.stderr)
        return 1
    try:
        pipe = Pipeline.from_bundle(args.bundle, threads=args.threads, vad=not args.no_vad,
                                      second_pass=not args.no_second_pass,
                                      heard_partials=not args.stream_partials)
    except (BundleError, OSError) as e:
        print(f"heed eval: {e}", file=sys.stderr)
        return 1
    report = evaluate(args.manifest, pipe, utts, progress=True, beam=args.beam)
    md = to_markdown(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
        (out / "eval.md").write_text(md + "\n")
        try:
            write_plots(report, out)
        except ImportError:  # matplotlib: only the plots need it, and it is not a runtime dependency
            print(f"heed eval: no plots in {out}: they need matplotlib (pip install matplotlib); "
                  "eval.json and eval.md are written", file=sys.stderr)
    print(md)
    if report.failed:  # the exit status says whether every utterance was scored
        print(f"heed eval: {len(report.failed)} of {len(utts)} utterances failed, e.g. {report.failed[0]['id']}: "
              f"{report.failed[0]['error']}", file=sys.stderr)
        return 1
    return 0


def non_speech_cases(seed: int = 0) -> dict[str, Any]:
    """5 s of digital silence, 5 s of white noise at -60 dBFS and 30 s of room noise (pink noise at
    -45 dBFS with a 50 Hz hum and a few soft clicks): what must give no words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 30 * 16000
    pink = np.cumsum(rng.normal(size=n)).astype(np.float32)
    pink = np.diff(np.concatenate([[0], pink])) * 0.02 + np.convolve(rng.normal(size=n), np.ones(8) / 8, "same")
    pink = pink / np.sqrt(np.mean(pink ** 2)) * 10 ** (-45 / 20)
    room = pink + 10 ** (-50 / 20) * np.sin(2 * np.pi * 50 * np.arange(n) / 16000)
    for t in rng.integers(0, n - 100, 6):
        room[t : t + 80] += 10 ** (-30 / 20) * np.hanning(80)
    return {"silence_5s": np.zeros(5 * 16000, np.float32),
            "white_noise_-60dBFS_5s": (rng.normal(size=5 * 16000) * 10 ** (-60 / 20)).astype(np.float32),
            "room_noise_30s": room.astype(np.float32)}
