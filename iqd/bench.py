"""The intended-query detection benchmark behind docs/iqd_bench.md (`scripts/bench_iqd.py` runs `main`).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_iqd.py --asr exp/asr-char/final.pt --corpus data/c14k \
        --e2e exp/iqd/e2e --fusion exp/iqd/fusion --independent exp/iqd/independent --cascade exp/iqd/cascade \
        --cache exp/iqd/cache

Per system (E2E; "e2e + text", the E2E reading its label history as text too, `iqd/fusion.py`,
what the bundle ships; independent; cascade; each E2E also at an early operating point), on the test split (whole utterances, cached with the
frozen ASR like dev) and on the continuous recordings of `heed corpus streams CORPUS --split test`.
The ASR's tokens come from the search the cache's dev split was made with (`iqd.replay.SearchConfig`:
greedy, or the runtime's beam search with LM fusion, i.e. what the shipped pipeline feeds its IQD),
unless --search is given; the benchmark refuses a cache whose splits were made by different
searches (HEED_IQD_MIXED_SEARCH=1: warn only). Reported:
- EER: where false accepts and false rejects cross when the decision threshold theta sweeps
  (the state machine's on/off thresholds move together; the cascade's one threshold);
- FA and FR at the operating point chosen on dev (the policy and theta in each model.pt);
- median and p90 latency (decision time - speech_start) at that point;
- the EER of the score at the endpoint (offline), and the latency-versus-EER curve: the EER of
  the smoothed posterior available `delay` seconds after speech start, for delays of 0.25-3 s.
Figures: the DET curves (--det-png) and latency-versus-EER (--latency-png). JSON (--json) and a
markdown table (--md, also printed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iqd.cache import IqdCache, check_searches, frame_seconds, split_search
from iqd.evaluate import THETAS, TRAILING_SILENCE_S, evaluate_policy, score_at_delay
from iqd.fusion import cache_tracks, fuse_tracks, history_text
from runtime.detection_metrics import det_curve, eer, fa_fr, latency_stats
from iqd.replay import SearchConfig, add_search_args, cache_split, search_from_args
from iqd.train import load_detector, posteriors, tracks_of
from runtime.iqd_policy import DecisionPolicy

FUSED = "e2e + text"  # the E2E reading its label history as text too (iqd/fusion.py)
DELAYS = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]


def detector_policy(ckpt) -> DecisionPolicy:
    """The detector's policy; a checkpoint saved before the speech-onset gate gets the gate's defaults."""
    return DecisionPolicy.from_dict(ckpt["policy"])


def frame_system(model, ckpt, tracks) -> dict:
    policy, theta = detector_policy(ckpt), ckpt["theta"]
    r = evaluate_policy(tracks, policy, theta)
    r["latency_eer"] = [{"delay_s": d, "eer": eer(score_at_delay(tracks, policy, d), [t.directed for t in tracks])}
                        for d in DELAYS]
    r["policy"], r["theta"], r["n"] = policy.to_dict(), theta, len(tracks)
    return r


def cascade_system(scores: np.ndarray, labels: list[bool], decided_at: list[float], starts: list[float],
                   theta: float) -> dict:
    fa, fr, _ = det_curve(scores, labels)
    lat = latency_stats(decided_at, starts)
    return {"eer": eer(scores, labels), "offline_eer": eer(scores, labels), **fa_fr(scores >= theta, labels), **lat,
            "curve": {"fa": fa.tolist(), "fr": fr.tolist()}, "theta": theta, "n": len(labels),
            "latency_eer": [{"delay_s": lat["median_s"], "eer": eer(scores, labels)}]}


def shipped(models) -> str:
    """The E2E row the bundle ships: the fused one when benchmarked."""
    return FUSED if FUSED in models else "e2e"


def early_e2e(args, models, name: str) -> tuple | None:
    """The E2E detector at an earlier operating point: the policy and theta chosen on dev as in
    training (`choose_policy`, on the dev splits the E2E was trained with), but within a median
    latency budget `--early-gap-s` below the independent detector's dev median. Same network; a
    detector that reads its history as text gets its fusion weight chosen within that budget too
    (`iqd.fusion.choose_weight`, w = 0 among the candidates). None when nothing decides that early on dev."""
    import copy

    from iqd.cache import open_splits
    from iqd.evaluate import choose_policy

    model, ckpt = models[name]
    budget = models["independent"][1]["dev"]["median_s"] - args.early_gap_s
    streams = bool(ckpt["train_config"].get("streams"))
    dev = open_splits(args.cache, "dev", streams)
    early = copy.deepcopy(ckpt)
    text = history_text(ckpt)
    if text is None:
        policy, theta, search = choose_policy(cache_tracks(model, ckpt, dev), budget, detector_policy(ckpt))
        chosen = search["chosen"]
    else:  # the fused detector's early point gets its own weight, chosen on dev within the early budget
        from iqd.fusion import cache_pieces, choose_weight

        tracks = tracks_of(dev, posteriors(model, dev), detector_policy(ckpt))
        found = choose_weight(tracks, [(u.tokens, u.token_frames) for u in dev.utts], text, cache_pieces(dev),
                              budget, detector_policy(ckpt))
        chosen = {"median_s": float("inf")}
        if found is not None:
            text, policy, theta, _, rows = found
            chosen = next(r for r in rows if r["weight"] == text.weight)
            early["text"] = {**ckpt["text"], "weight": text.weight, "search": rows}
    if chosen["median_s"] > budget:
        print(f"{name} early: no policy within a dev median of {budget:.2f} s; not scored", file=sys.stderr)
        return None
    early["policy"], early["theta"] = policy.to_dict(), theta
    early["dev"] = {**ckpt["dev"], "eer": chosen["eer"], "median_s": chosen["median_s"], "max_median_latency_s": budget}
    return model, early


def bench_test_split(args, models) -> dict:
    cache_dir = Path(args.cache)
    if not (cache_dir / "test.index.jsonl").exists():
        cache_split(args.asr, args.corpus, cache_dir, "test", args.test_limit, search=args.search_cfg)
    check_searches(cache_dir)
    test = IqdCache(cache_dir, "test")
    out = {}
    probs: dict[int, list[np.ndarray]] = {}  # per network: an early row shares its detector's
    for name, (model, ckpt) in models.items():
        t0 = time.monotonic()
        if ckpt["kind"] == "cascade":
            scores = model.predict([u.hyp for u in test.utts]).numpy()
            r = cascade_system(scores, [u.directed for u in test.utts], endpoints(test),
                               [u.speech_start for u in test.utts], ckpt["theta"])
        else:
            if id(model) not in probs:
                probs[id(model)] = posteriors(model, test)
            r = frame_system(model, ckpt, cache_tracks(model, ckpt, test, probs[id(model)]))
        out[name] = r
        print(f"test {name}: EER {100 * r['eer']:.1f}% median {r['median_s']:.2f} s ({time.monotonic() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    if args.e2e_export and shipped(models) in models:
        from iqd.fusion import cache_pieces
        from runtime.iqd import IqdModel

        ckpt = models[shipped(models)][1]
        tracks = tracks_of(test, onnx_posteriors(Path(args.e2e_export), test), detector_policy(ckpt))
        text = IqdModel.from_dir(args.e2e_export).text  # the export's own text reader, as the runtime loads it
        if text is not None:
            tracks = fuse_tracks(tracks, [(u.tokens, u.token_frames) for u in test.utts], text, cache_pieces(test))
        out[f"{shipped(models)} int8 (onnx)"] = frame_system(None, ckpt, tracks)
    return out


def onnx_posteriors(export_dir: Path, cache: IqdCache) -> list[np.ndarray]:
    """The exported int8 graph stepped frame by frame by the runtime's IqdModel, on every cached utterance."""
    from runtime.iqd import IqdModel

    iqd = IqdModel.from_dir(export_dir, precision="int8")
    out = []
    for i, u in enumerate(cache.utts):
        enc, state, ps = cache.enc(i), iqd.init_state(), []
        by_frame: list[list[int]] = [[] for _ in range(len(enc))]
        for tok, f in zip(u.tokens, u.token_frames):
            by_frame[f].append(tok)
        for t in range(len(enc)):
            p, state = iqd.step(enc[t], by_frame[t], state)
            ps.append(p)
        out.append(np.array(ps))
    return out


def endpoints(cache: IqdCache) -> list[float]:
    from iqd.evaluate import onset_and_endpoint

    fs = frame_seconds()
    return [onset_and_endpoint(u.token_frames, u.speech_start, u.speech_end, fs)[1] for u in cache.utts]


def bench_streams(args, models) -> dict:
    from asr.backend import TorchTransducer
    from asr.tokenizer import Tokenizer
    from iqd.streams import decode_recording, labelled_utterances, load_timelines, match, segment_posteriors, segment_track

    asr = TorchTransducer.from_checkpoint(args.asr)
    tok = Tokenizer(Path(args.asr).parent / "tokens.model")
    fs = frame_seconds()
    silent = set(asr.silent_tokens)
    stream = args.search_cfg.stream(asr)
    timelines = load_timelines(args.corpus, "test")[: args.n_streams]
    tracks = {n: [] for n in models}
    texts = {n: history_text(ckpt) for n, (_, ckpt) in models.items()}  # the fused detectors' readers, once
    pieces = tok.pieces()
    casc = {"scores": [], "labels": [], "at": [], "starts": []}
    n_missed = n_utts = 0
    for wav, tl in timelines:
        feats, enc, segments = decode_recording(stream, wav, args.search_cfg.history_mode)
        utts = labelled_utterances(tl)
        matched = match(utts, segments, fs, silent)
        n_utts += len(utts)
        n_missed += sum(m is None for m in matched)
        for u, seg in zip(utts, matched):
            probs: dict[int, np.ndarray] = {}  # per network: an early row shares its detector's
            for name, (model, ckpt) in models.items():
                if ckpt["kind"] == "cascade":
                    continue
                p = np.zeros(0)
                if seg is not None and id(model) in probs:
                    p = probs[id(model)]
                elif seg is not None:
                    p = probs[id(model)] = segment_posteriors(model, feats, enc, seg)
                track = segment_track(p, seg, u, fs, silent, feats, detector_policy(ckpt))
                if texts[name] is not None and seg is not None:
                    history = (seg.tokens, [f - seg.start for f in seg.frames])
                    track = fuse_tracks([track], [history], texts[name], pieces)[0]
                tracks[name].append(track)
            if "cascade" in models:
                model, _ = models["cascade"]
                casc["scores"].append(float(model.predict([tok.decode(seg.transcript)])[0]) if seg is not None else 0.0)
                casc["labels"].append(bool(u["directed"]))
                casc["starts"].append(u["speech_start"])
                casc["at"].append((seg.frames[-1] + 1) * fs + TRAILING_SILENCE_S if seg is not None
                                  else u["speech_end"] + TRAILING_SILENCE_S)
    out = {"n_streams": len(timelines), "n_utterances": n_utts, "n_missed_by_asr": n_missed,
           "audio_s": round(sum(tl["duration"] for _, tl in timelines), 1)}
    for name, (model, ckpt) in models.items():
        if ckpt["kind"] == "cascade":
            out[name] = cascade_system(np.array(casc["scores"]), casc["labels"], casc["at"], casc["starts"], ckpt["theta"])
        else:
            out[name] = frame_system(model, ckpt, tracks[name])
        print(f"streams {name}: EER {100 * out[name]['eer']:.1f}% median {out[name]['median_s']:.2f} s",
              file=sys.stderr, flush=True)
    return out


def plot(results: dict, det_png: Path, lat_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    sets = [k for k in ("test", "streams") if k in results]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 5), squeeze=False)
    ticks = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6])
    for ax, key in zip(axes[0], sets):
        for name, r in results[key].items():
            if not isinstance(r, dict) or "curve" not in r:
                continue
            fa = np.clip(np.array(r["curve"]["fa"]), 1e-3, 1 - 1e-3)
            fr = np.clip(np.array(r["curve"]["fr"]), 1e-3, 1 - 1e-3)
            order = np.argsort(fa)
            ax.plot(norm.ppf(fa[order]), norm.ppf(fr[order]), label=f"{name} (EER {100 * r['eer']:.1f}%)")
            ax.plot(norm.ppf(max(1e-3, r["fa_rate"])), norm.ppf(max(1e-3, r["fr_rate"])), "o", color=ax.lines[-1].get_color())
        ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_xlim(norm.ppf(0.005), norm.ppf(0.7))
        ax.set_ylim(norm.ppf(0.005), norm.ppf(0.7))
        ax.set_xlabel("false accepts (%)")
        ax.set_ylabel("false rejects (%)")
        ax.set_title(f"DET, {key} (dots: the dev-chosen operating point)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(det_png, dpi=110)
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, key in zip(axes[0], sets):
        for name, r in results[key].items():
            if not isinstance(r, dict) or "latency_eer" not in r:
                continue
            xs = [p["delay_s"] for p in r["latency_eer"]]
            ys = [100 * p["eer"] for p in r["latency_eer"]]
            line = ax.plot(xs, ys, "-" if len(xs) > 1 else "s", label=f"{name}")[0]
            ax.plot(r["median_s"], 100 * r["eer"], "*", markersize=12, color=line.get_color())
        ax.set_xlabel("seconds after speech start")
        ax.set_ylabel("EER (%)")
        ax.set_title(f"latency vs EER, {key} (stars: decisions at median latency)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(lat_png, dpi=110)


def markdown(results: dict) -> str:
    lines = []
    for key in ("test", "streams"):
        if key not in results:
            continue
        res = results[key]
        extra = (f" ({res['n_streams']} recordings, {res['audio_s']:.0f} s, {res['n_utterances']} utterances, "
                 f"{res['n_missed_by_asr']} without an ASR segment)" if key == "streams" else "")
        lines += [f"**{key}**{extra}", "",
                  "| system | EER | FA at op. point | FR at op. point | median latency | p90 latency | EER at endpoint |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in res.items():
            if not isinstance(r, dict):
                continue
            lines.append(f"| {name} | {100 * r['eer']:.1f}% | {100 * r['fa_rate']:.1f}% ({r['fa']}/{r['n_undirected']}) | "
                         f"{100 * r['fr_rate']:.1f}% ({r['fr']}/{r['n_directed']}) | {r['median_s']:.2f} s | "
                         f"{r['p90_s']:.2f} s | {100 * r['offline_eer']:.1f}% |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench_iqd.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asr", required=True, help="the frozen ASR checkpoint the detectors were trained with")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--cache", required=True, help="cache folder (the test split is added to it)")
    ap.add_argument("--e2e")
    ap.add_argument("--independent")
    ap.add_argument("--cascade")
    ap.add_argument("--fusion", help=f"heed train iqd --kind fusion folder: the row '{FUSED}'")
    ap.add_argument("--e2e-export", help="heed export iqd folder: also score its int8 graph on the test split")
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--n-streams", type=int, default=20)
    ap.add_argument("--no-streams", action="store_true")
    ap.add_argument("--no-onset-gate", action="store_true",
                    help="start the deciders at the first spoken token alone (onset_min_ms = 0), as before the gate")
    ap.add_argument("--early-gap-s", type=float, default=0.6,
                    help="also score the E2E at a policy chosen on dev within this much less median latency than "
                         "the independent detector's dev median (the issue's 600 ms)")
    ap.add_argument("--no-early", action="store_true", help="do not score the E2E's early operating point")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="docs/iqd_bench.json")
    ap.add_argument("--md", default="docs/iqd_bench.md")
    ap.add_argument("--det-png", default="docs/iqd_det.png")
    ap.add_argument("--latency-png", default="docs/iqd_latency_eer.png")
    add_search_args(ap)
    ap.set_defaults(search=None)  # default: the search the cache's dev split was made with
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.search is None:
        have = split_search(args.cache, "dev") if (Path(args.cache) / "dev.index.jsonl").exists() else {"method": "greedy"}
        args.search_cfg = SearchConfig.from_describe(have)
    else:
        args.search_cfg = search_from_args(args)
    print(f"search: {json.dumps(args.search_cfg.describe())}", file=sys.stderr, flush=True)
    models = {name: load_detector(Path(d) / "model.pt") for name, d in
              (("e2e", args.e2e), (FUSED, args.fusion), ("independent", args.independent), ("cascade", args.cascade)) if d}
    if not models:
        ap.error("give at least one of --e2e, --fusion, --independent, --cascade")
    if args.no_onset_gate:
        for _, ckpt in models.values():
            ckpt["policy"] = {**ckpt["policy"], "onset_min_ms": 0.0}
    for name in ("e2e", FUSED):
        if not args.no_early and name in models and "independent" in models:
            early = early_e2e(args, models, name)
            if early is not None:
                models[f"{name} early"] = early
    results = {"test": bench_test_split(args, models)}
    if not args.no_streams:
        results["streams"] = bench_streams(args, models)
    results["systems"] = {n: {"kind": c["kind"], "n_params": c["n_params"], "policy": detector_policy(c).to_dict(), "theta": c["theta"],
                              "dev": c["dev"], "text_weight": c["text"]["weight"] if c.get("text") else None}
                          for n, (_, c) in models.items()}
    results["thetas"] = THETAS.tolist()
    results["asr"] = args.asr
    results["search"] = args.search_cfg.describe()
    e2e, ind = results["test"].get(shipped(models)), results["test"].get("independent")
    if e2e and ind:
        results["e2e_vs_independent"] = {
            f"{key} ({name})": {
                "eer_relative_reduction": 1 - res[name]["eer"] / res["independent"]["eer"] if res["independent"]["eer"] else None,
                "median_latency_reduction_s": res["independent"]["median_s"] - res[name]["median_s"]}
            for key, res in results.items() if key in ("test", "streams")
            for name in ("e2e", "e2e early", FUSED, f"{FUSED} early") if name in res}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    Path(args.md).write_text(md + "\n")
    plot(results, Path(args.det_png), Path(args.latency_png))
    print(md)
    return 0

