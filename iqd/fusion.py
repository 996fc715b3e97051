"""The E2E detector reading its label history twice: through its own GRU (the joint network) and
as text, scored by the cascade's n-gram classifier (`runtime.iqd_text.HistoryText`).

The joint network learns from the cached training utterances only (8,000 and the recordings'),
the text classifier from every training sentence, and on the finished transcript the classifier
is the better of the two (docs/iqd.md). Fusing the two logits per frame, with the text read from
the decider's onset on, takes the best of both while the person speaks:

    p = sigmoid((1 - w) logit(p_joint) + w text_logit)

`fit_fusion` picks w on dev (with its recordings when the E2E was trained with them) from a small
grid, re-choosing the decision policy for each (`choose_policy`, the same latency budget), and
writes a checkpoint that is the E2E's plus a `text` entry (classifier weights, bias, w) and the
new policy; `heed export iqd` then ships both. Nothing is trained here: the joint network and
the classifier are the ones given. Given several joint networks (`heed train iqd --kind e2e` with
other seeds), it fuses their mean logit (`IqEnsemble`, one exported graph) with the text.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from iqd.cache import ConcatCache, IqdCache, open_splits
from iqd.evaluate import Track, choose_policy, evaluate_policy
from iqd.model import IqEnsemble
from iqd.train import load_detector, posteriors, tracks_of
from runtime.iqd_policy import DecisionPolicy
from runtime.iqd_text import HistoryText

WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)  # w = 0 is the joint network alone


def history_text(ckpt: dict[str, Any]) -> HistoryText | None:
    """The checkpoint's text reader, None for a plain E2E checkpoint."""
    t = ckpt.get("text")
    if not t:
        return None
    return HistoryText(np.asarray(t["weights"], np.float32), float(t["bias"]), float(t["weight"]))


def from_cascade(cascade: torch.nn.Module, weight: float) -> HistoryText:
    """The cascade's classifier (a TextClassifier) as the runtime's numpy scorer."""
    return HistoryText(cascade.weights.weight.detach().numpy()[:, 0], float(cascade.bias.detach()), weight)


def cache_pieces(cache: IqdCache | ConcatCache) -> list[str]:
    """The token pieces of the ASR that filled the cache (its tokens.model sits beside its checkpoint)."""
    from asr.tokenizer import Tokenizer

    asr = json.loads((Path(cache.dir) / "meta.json").read_text())["asr"]
    return Tokenizer(Path(asr).parent / "tokens.model").pieces()


def fuse_tracks(tracks: Sequence[Track], histories: Sequence[tuple[Sequence[int], Sequence[int]]],
                text: HistoryText, pieces: Sequence[str], heard: Sequence[Sequence] | None = None) -> list[Track]:
    """Each track with its posterior fused with the text of its history (tokens, frames in the
    track's frames), read from the track's onset on, as `runtime.iqd.IqdStream` does live; with
    `heard` (each row's `CachedUtt.heard`), the heard partials' text instead."""
    out = []
    for i, (tr, (tokens, frames)) in enumerate(zip(tracks, histories)):
        if heard is not None:
            logits = text.heard_logits(heard[i], tr.onset, len(tr.p))
        else:
            logits = text.frame_logits(tokens, frames, tr.onset, len(tr.p), pieces)
        out.append(dataclasses.replace(tr, p=text.fuse_track(tr.p, logits)) if len(tr.p) else tr)
    return out


def heard_of(cache: IqdCache | ConcatCache) -> list[list]:
    """Every row's heard partials (`CachedUtt.heard`); an error naming the cache when one lacks them."""
    missing = [u.id for u in cache.utts if u.heard is None]
    if missing:
        raise ValueError(f"{cache.dir}/{cache.split}: {len(missing)} rows without heard partials (e.g. {missing[0]}); "
                         "fill the cache with python -m iqd.replay --bundle ... --heard")
    return [u.heard for u in cache.utts]


def cache_tracks(model: torch.nn.Module, ckpt: dict[str, Any], cache: IqdCache | ConcatCache,
                 probs: list[np.ndarray] | None = None) -> list[Track]:
    """The detector's tracks over a cached split (its policy's onset gate): the joint network's
    posteriors (`probs` when already computed), fused with the text when the checkpoint reads it."""
    if probs is None:
        probs = posteriors(model, cache)
    tracks = tracks_of(cache, probs, DecisionPolicy.from_dict(ckpt["policy"]))
    text = history_text(ckpt)
    if text is None:
        return tracks
    heard = heard_of(cache) if ckpt["text"].get("reads") == "heard" else None
    return fuse_tracks(tracks, [(u.tokens, u.token_frames) for u in cache.utts], text, cache_pieces(cache), heard)


def choose_weight(tracks: Sequence[Track], histories: Sequence[tuple[Sequence[int], Sequence[int]]],
                  reader: HistoryText, pieces: Sequence[str], budget: float, base: DecisionPolicy,
                  weights: Sequence[float] = WEIGHTS, progress: bool = False, heard: Sequence[Sequence] | None = None):
    """The fusion weight (and, at each weight, the policy: `choose_policy`) with the lowest EER over
    the tracks among those whose median latency is within budget. reader: the classifier (its own
    weight ignored). Returns (HistoryText at the chosen weight, policy, theta, the fused tracks, a
    row per weight), or None when no weight decides within the budget."""
    rows, best = [], None
    for w in weights:
        text = HistoryText(reader.weights, reader.bias, w)
        fused = fuse_tracks(tracks, histories, text, pieces, heard)
        policy, theta, search = choose_policy(fused, budget, base)
        r = {"weight": w, "eer": search["chosen"]["eer"], "median_s": search["chosen"]["median_s"]}
        rows.append(r)
        if progress:
            print(f"fusion w={w}: dev EER {100 * r['eer']:.1f}%, median {r['median_s']:.2f} s", flush=True)
        if r["median_s"] <= budget and (best is None or r["eer"] < best[0]["eer"]):
            best = (r, text, policy, theta, fused)
    if best is None:
        return None
    _, text, policy, theta, fused = best
    return text, policy, theta, fused, rows


def ensemble(paths: Sequence[str | Path]) -> tuple[IqEnsemble, dict[str, Any]]:
    """The e2e checkpoints at paths (plain ones, e.g. other seeds) as one `IqEnsemble` and its
    checkpoint: the first's, with the members' configs, weights and dev figures."""
    loaded = [load_detector(p) for p in paths]
    for p, (_, c) in zip(paths, loaded):
        if c["kind"] != "e2e" or c.get("ensemble") or c.get("text"):
            raise ValueError(f"{p}: an ensemble is made of plain e2e checkpoints (heed train iqd --kind e2e)")
    model = IqEnsemble([m.cfg for m, _ in loaded])
    for member, (m, _) in zip(model.members, loaded):
        member.load_state_dict(m.state_dict())
    first = loaded[0][1]
    ckpt = {**first, "model": model.state_dict(), "ensemble": [m.cfg.to_dict() for m, _ in loaded],
            "members": [{"path": str(p), "dev": c["dev"], "seed": c["train_config"].get("seed")} for p, (_, c) in zip(paths, loaded)],
            "n_params": model.n_params()}
    return model.eval(), ckpt


def fit_fusion(e2e_path: str | Path | Sequence[str | Path], cascade_path: str | Path, out: str | Path,
               weights: Sequence[float] = WEIGHTS, cache: str | Path | None = None,
               progress: bool = True, reads: str = "pieces") -> Path:
    """Choose w on dev (module docstring); write OUT/model.pt and OUT/dev.json. Returns the checkpoint
    path. Several e2e checkpoints (other seeds) are fused as one `IqEnsemble`: the mean of their
    logits, then the text; its policy, re-chosen, replaces theirs. reads: the text read, "pieces"
    (the label history's) or "heard" (the heard partials', cached with `--heard`)."""
    if reads not in ("pieces", "heard"):
        raise ValueError(f"the text reader reads 'pieces' or 'heard', not {reads!r}")
    paths = [e2e_path] if isinstance(e2e_path, (str, Path)) else list(e2e_path)
    model, ckpt = load_detector(paths[0]) if len(paths) == 1 else ensemble(paths)
    cascade, cckpt = load_detector(cascade_path)
    if ckpt["kind"] != "e2e" or cckpt["kind"] != "cascade":
        raise ValueError(f"fusion needs an e2e and a cascade checkpoint, got {ckpt['kind']} and {cckpt['kind']}")
    tc = ckpt["train_config"]
    cache_dir = Path(cache or tc.get("cache") or Path(paths[0]).parent / "cache")
    dev = open_splits(cache_dir, "dev", bool(tc.get("streams")))
    base = DecisionPolicy.from_dict(ckpt["policy"])
    budget = float(tc.get("max_median_latency_s", 1.4))
    tracks = tracks_of(dev, posteriors(model, dev), base)
    histories = [(u.tokens, u.token_frames) for u in dev.utts]
    pieces = cache_pieces(dev)
    heard = heard_of(dev) if reads == "heard" else None
    found = choose_weight(tracks, histories, from_cascade(cascade, 0.0), pieces, budget, base, weights, progress, heard)
    if found is None:
        raise ValueError(f"no fusion weight decides within the dev median latency budget of {budget} s")
    text, policy, theta, fused, rows = found
    result = evaluate_policy(fused, policy, theta)
    result.pop("curve", None)
    fused_ckpt = {**ckpt, "policy": policy.to_dict(), "theta": theta, "dev": result,
                  "text": {"weights": text.weights, "bias": text.bias, "weight": text.weight,
                           "cascade": str(cascade_path), "search": rows, "reads": reads},
                  "plain_dev": ckpt["dev"], "plain_policy": ckpt["policy"], "plain_theta": ckpt["theta"]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(fused_ckpt, out / "model.pt")
    (out / "dev.json").write_text(json.dumps({"dev": result, "policy": policy.to_dict(), "theta": theta,
                                              "weight": text.weight, "search": rows}, indent=1) + "\n")
    if progress:
        print(f"fusion: w={text.weight}, dev EER {100 * result['eer']:.1f}%, median {result['median_s']:.2f} s; "
              f"policy {policy}", flush=True)
    return out / "model.pt"
