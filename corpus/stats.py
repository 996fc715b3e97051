"""What a corpus holds, and whether its splits are sound.

    heed corpus stats data/corpus --plot data/corpus/stats.png

Reads whichever of train/dev/test.jsonl the folder has. Besides counts it reports two checks of a
good corpus: held-out voices (voices heard only in dev/test) and sentence overlap between splits
(the same text in two splits; should be 0).

Acoustic conditions come from each utterance's `augment`: `snr_db` (an utterance without it is
clean), `noise` or `noise_type` (its kind), and truthy `rir` and `telephone` flags.
"""
from __future__ import annotations

import argparse
import statistics
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

from runtime.manifest import SPLITS, ManifestError, Utterance, read_manifest

UNKNOWN = "(none)"


def _class(u: Utterance) -> str:
    return "unknown" if u.directed is None else "directed" if u.directed else "undirected"


def _snr(u: Utterance) -> float | None:
    snr = u.augment.get("snr_db")
    return float(snr) if isinstance(snr, (int, float)) and not isinstance(snr, bool) else None


def _noise(u: Utterance) -> str | None:
    kind = u.augment.get("noise", u.augment.get("noise_type"))
    return str(kind) if kind else None


def _condition_labels(u: Utterance) -> list[str]:
    """The conditions an utterance was rendered under, as labels for the class-overlap table."""
    a = u.augment
    labels = [f"noise:{_noise(u) or 'none'}", "reverb" if a.get("rir") else "dry"]
    labels += [f"distance:{a['distance']}"] if a.get("distance") else []
    labels += ["telephone"] if a.get("telephone") else []
    gain = a.get("gain_db")
    if isinstance(gain, (int, float)) and not isinstance(gain, bool):
        labels.append("gain:<-12dB" if gain < -12 else "gain:-12..-3dB" if gain < -3 else "gain:>=-3dB")
    return labels


def _condition_by_class(utts: list[Utterance]) -> dict[str, dict[str, int]]:
    """{condition label: {class: n}}, labels sorted; one pass over the utterances."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for u in utts:
        for label in _condition_labels(u):
            counts[label][_class(u)] += 1
    return {label: dict(counts[label]) for label in sorted(counts)}


def _by(corpus: dict[str, list[Utterance]], key: Any) -> dict[str, dict[str, int]]:
    """{value of key(u): {split: count}}, sorted by value."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for split, utts in corpus.items():
        for u in utts:
            out[key(u)][split] += 1
    return {k: dict(out[k]) for k in sorted(out)}


def corpus_stats(dir: Path) -> dict[str, Any]:
    """Statistics of the manifests in `dir`; a JSON-able dict (raw values for plots under "samples")."""
    dir = Path(dir)
    corpus = {s: read_manifest(dir / f"{s}.jsonl") for s in SPLITS if (dir / f"{s}.jsonl").is_file()}
    if not corpus:
        raise ManifestError(f"{dir}: no train.jsonl, dev.jsonl or test.jsonl")
    every = [u for utts in corpus.values() for u in utts]
    voices = {s: {u.voice for u in utts if u.voice} for s, utts in corpus.items()}
    texts = {s: {u.text for u in utts} for s, utts in corpus.items()}
    snrs = [x for u in every if (x := _snr(u)) is not None]
    return {
        "dir": str(dir),
        "splits": {s: {"utterances": len(utts), "hours": sum(u.duration or 0.0 for u in utts) / 3600,
                       "voices": len(voices[s])} for s, utts in corpus.items()},
        "by_source": _by(corpus, lambda u: u.source or UNKNOWN),
        "by_voice": _by(corpus, lambda u: u.voice or UNKNOWN),
        "by_intent": _by(corpus, lambda u: u.intent or UNKNOWN),
        "by_class": _by(corpus, _class),
        "snr": {"n": len(snrs), "min": min(snrs, default=None), "median": statistics.median(snrs) if snrs else None,
                "max": max(snrs, default=None), "clean_share": 1 - len(snrs) / len(every) if every else None},
        "conditions": {
            "noise": dict(sorted(Counter(k for u in every if (k := _noise(u))).items())),
            "rir": sum(bool(u.augment.get("rir")) for u in every),
            "telephone": sum(bool(u.augment.get("telephone")) for u in every),
        },
        # Both classes should occur under every condition, so acoustics alone cannot decide
        # directedness: {condition: {class: n}}.
        "condition_by_class": _condition_by_class(every),
        "held_out_voices": {s: sorted(voices[s] - voices.get("train", set())) for s in corpus if s != "train"},
        "overlap": {f"{a}-{b}": len(texts[a] & texts[b]) for a, b in combinations(corpus, 2)},
        "samples": {
            "duration": {s: [u.duration for u in utts if u.duration is not None] for s, utts in corpus.items()},
            "snr_db": {c: [x for u in every if _class(u) == c and (x := _snr(u)) is not None]
                       for c in ("directed", "undirected", "unknown")},
        },
    }


def _table(title: str, rows: dict[str, dict[str, int]], splits: list[str]) -> list[str]:
    out = [f"## {title}", "", "| | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    out += [f"| {k} | " + " | ".join(str(v.get(s, 0)) for s in splits) + " |" for k, v in rows.items()]
    return out + [""]


def format_stats(stats: dict[str, Any]) -> str:
    """A markdown report of `corpus_stats`."""
    splits = list(stats["splits"])
    lines = [f"# Corpus {stats['dir']}", "", "| split | utterances | hours | voices |", "|---|---|---|---|"]
    lines += [f"| {s} | {v['utterances']} | {v['hours']:.2f} | {v['voices']} |" for s, v in stats["splits"].items()]
    lines.append("")
    for key in ("source", "class", "intent", "voice"):
        lines += _table(f"By {key}", stats[f"by_{key}"], splits)
    snr, cond = stats["snr"], stats["conditions"]
    lines.append("## Conditions\n")
    if snr["n"]:
        lines.append(f"- SNR dB: min {snr['min']:.1f}, median {snr['median']:.1f}, max {snr['max']:.1f} "
                     f"over {snr['n']} noisy")
    lines.append(f"- clean share: {snr['clean_share']:.1%}")
    lines.append(f"- noise kinds: {', '.join(f'{k} {n}' for k, n in cond['noise'].items()) or 'none'}")
    lines += [f"- rir: {cond['rir']}", f"- telephone: {cond['telephone']}", ""]
    lines += _table("Conditions by class", stats["condition_by_class"], ["directed", "undirected"])
    lines += ["## Checks", ""]
    for s, vs in stats["held_out_voices"].items():
        lines.append(f"- voices only in {s}: {len(vs)}" + (f" ({', '.join(vs)})" if vs else ""))
    for pair, n in stats["overlap"].items():
        lines.append(f"- sentences shared by {pair}: {n}" + ("  <-- should be 0" if n else ""))
    return "\n".join(lines) + "\n"


def plot_stats(stats: dict[str, Any], png: Path) -> None:
    """Four panels: utterances per source by split, durations, SNR by class, voices per split."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    splits = list(stats["splits"])
    fig = Figure(figsize=(12, 8), layout="constrained")
    (ax_src, ax_dur), (ax_snr, ax_voice) = fig.subplots(2, 2)
    sources = list(stats["by_source"])
    width = 0.8 / len(splits)
    for i, s in enumerate(splits):
        ax_src.bar([j + i * width for j in range(len(sources))],
                   [stats["by_source"][k].get(s, 0) for k in sources], width, label=s)
    ax_src.set_xticks([j + 0.4 - width / 2 for j in range(len(sources))], sources, rotation=30, ha="right")
    ax_src.set(title="utterances per source", ylabel="utterances")
    ax_src.legend()
    durations = stats["samples"]["duration"]
    ax_dur.hist([durations[s] for s in splits], bins=30, label=splits, stacked=True)
    ax_dur.set(title="duration", xlabel="seconds", ylabel="utterances")
    ax_dur.legend()
    snr = {c: v for c, v in stats["samples"]["snr_db"].items() if v}
    if snr:
        ax_snr.hist(list(snr.values()), bins=20, label=list(snr), alpha=0.7)
        ax_snr.legend()
    else:
        ax_snr.text(0.5, 0.5, "no noisy utterances", ha="center", va="center", transform=ax_snr.transAxes)
    ax_snr.set(title="SNR by class", xlabel="dB", ylabel="utterances")
    held = [len(stats["held_out_voices"].get(s, [])) for s in splits]
    ax_voice.bar(splits, [stats["splits"][s]["voices"] for s in splits], label="voices")
    ax_voice.bar(splits, held, label="held out (not in train)", hatch="//")
    ax_voice.set(title="voices per split", ylabel="voices")
    ax_voice.legend()
    fig.savefig(png, dpi=80)


def main_stats(args: argparse.Namespace) -> int:
    """`heed corpus stats`: prints the report; exits with the message when a manifest is malformed."""
    try:
        stats = corpus_stats(args.dir)
    except ManifestError as e:
        raise SystemExit(f"heed corpus stats: {e}") from None
    print(format_stats(stats), end="")
    if args.plot:
        plot_stats(stats, args.plot)
        print(f"plot: {args.plot}")
    return 0


def add_stats_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `stats` under `heed corpus`."""
    p = subparsers.add_parser("stats", help="counts, hours, conditions and split checks of a corpus")
    p.add_argument("dir", type=Path, help="folder holding train/dev/test.jsonl")
    p.add_argument("--plot", type=Path, help="write a 4-panel PNG here")
    p.set_defaults(func=main_stats)
    return p
