"""`heed train iqd`: the three detectors, trained on the frozen ASR's cache (`iqd/cache.py`, filled by `iqd/replay.py`).

- e2e: the IQ joint network on the cached encoder outputs and label histories;
- independent: the acoustic GRU on the cached fbank frames;
- cascade: logistic regression on transcripts (the reference texts of every training utterance
  plus the ASR's transcripts of the cached ones; dev is scored on the ASR's transcripts).

Frame losses are binary cross-entropy on the utterance's `directed` label over the frames after
`speech_start` (earlier frames are masked: nothing there says who is being addressed). Adam,
batches of similar lengths, a wall-clock budget; the epoch with the lowest dev EER (of the
smoothed posterior at the endpoint) is kept. The decision policy is then chosen on dev
(`iqd.evaluate.choose_policy`) and saved with the weights in OUT/model.pt; OUT/dev.json has the
dev figures and OUT/log.csv the epochs.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iqd.augment import drop_tokens, time_mask
from iqd.cache import ConcatCache, IqdCache, frame_seconds, open_splits, open_stream_split, same_search, split_search
from iqd.evaluate import Track, choose_policy, evaluate_policy, final_scores, onset_and_endpoint, onset_frame
from runtime.config import reject_unknown
from runtime.detection_metrics import eer, eer_threshold, fa_fr, latency_stats
from iqd.model import (E2E_MODELS, N_TOKEN_SLOTS, AcousticDetector, IqdConfig, IqEnsemble, IqJoint, TextClassifier,
                       endpoint_bce, frame_mask, masked_bce)
from iqd.replay import cache_split
from runtime.iqd_policy import DecisionPolicy

KINDS = ("e2e", "independent", "cascade")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    kind: str = "e2e"
    corpus: str = "data/c14k"
    out: str = "exp/iqd-e2e"
    asr: str | None = None  # checkpoint of the frozen ASR (needed to fill the cache)
    cache: str | None = None  # default OUT/cache
    train_limit: int | None = 3000
    dev_limit: int | None = None
    max_epochs: int = 30
    max_minutes: float = 8.0
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_median_latency_s: float = 1.4  # the policy search's latency budget
    streams: bool = False  # also train on CACHE/train-streams, choose epoch and policy on dev + dev-streams
    # more training rows: the train splits of other caches of the same ASR and search, e.g. of a corpus
    # the ASR never trained on, whose label histories have test-like errors (docs/history/iqd.md)
    extra_train: tuple[str, ...] = ()
    # False: the extra caches replace CACHE's own train split (its recordings, with `streams`, stay): the
    # ASR's own training audio gives label histories far cleaner than the test's (docs/history/iqd.md)
    main_train: bool = True
    # e2e regularisation (issue 5: the detector overfits its cached training set), training only
    time_masks: int = 0  # spans of encoder frames zeroed per utterance (iqd.augment.time_mask)
    time_mask_max_frames: int = 10  # the longest span (40 ms frames)
    token_dropout: float = 0.0  # probability of deleting a label-history token (iqd.augment.drop_tokens)
    ema_decay: float = 0.999  # > 0: dev and the checkpoint use an exponential moving average of the weights (0: off)
    lr_schedule: str = "constant"  # constant | cosine (to 5% of lr over the budget: minutes or epochs, whichever ends first)
    endpoint_weight: float = 0.0  # extra BCE on each utterance's last loss frame (where the forced decision falls)
    seed: int = 0
    threads: int = 1
    model: IqdConfig = field(default_factory=IqdConfig)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {self.lr_schedule!r}")
        if not 0.0 <= self.token_dropout < 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("token_dropout and ema_decay must lie in [0, 1)")
        if not self.main_train and not self.extra_train:
            raise ValueError("main_train=False (--no-main-train) needs at least one --extra-train cache to train on")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from `to_dict()`; an unknown key is an error (a checkpoint saved before a field
        existed gets its default)."""
        reject_unknown(cls, d, "IQD TrainConfig keys")
        return cls(**{**d, "extra_train": tuple(d.get("extra_train", ())), "model": IqdConfig.from_dict(d.get("model", {}))})


def prepare(cfg: TrainConfig, progress: bool = True) -> tuple[IqdCache | ConcatCache, IqdCache | ConcatCache]:
    """The train (cropped) and dev (whole) caches, filled with cfg.asr where missing; with cfg.streams
    each with its continuous recordings (which `python -m iqd.replay --streams` must have cached)."""
    cache = Path(cfg.cache or Path(cfg.out) / "cache")
    for split, limit, crop in (("train", cfg.train_limit, True), ("dev", cfg.dev_limit, False)):
        if split == "train" and not cfg.main_train:
            continue
        if not (cache / f"{split}.index.jsonl").exists():
            if not cfg.asr:
                raise FileNotFoundError(f"{cache}/{split}.index.jsonl missing: give the ASR checkpoint (--asr) to fill it")
            cache_split(cfg.asr, cfg.corpus, cache, split, limit, crop, progress)
    extras = [extra_split(d, cache) for d in cfg.extra_train]
    if cfg.main_train:
        train = open_splits(cache, "train", cfg.streams)
        parts = train.parts if isinstance(train, ConcatCache) else [train]
        parts = [parts[0], *extras, *parts[1:]]
    else:
        parts = [*extras, *([open_stream_split(cache, "train")] if cfg.streams else [])]
    train = parts[0] if len(parts) == 1 else ConcatCache(parts)
    return train, open_splits(cache, "dev", cfg.streams)


def extra_split(extra: str | Path, cache: Path) -> IqdCache:
    """EXTRA's train split, refused unless the same ASR and search made it as CACHE's training rows
    (its train split; without one, its recordings of train, else dev)."""
    if not (Path(extra) / "train.index.jsonl").exists():
        raise FileNotFoundError(f"{extra}/train.index.jsonl missing: python -m iqd.replay --cache {extra} --split train ...")
    meta = [json.loads((Path(d) / "meta.json").read_text()) for d in (cache, extra)]
    if meta[0]["asr"] != meta[1]["asr"] or meta[0]["enc_dim"] != meta[1]["enc_dim"]:
        raise ValueError(f"{extra} was cached with ASR {meta[1]['asr']}, {cache} with {meta[0]['asr']}")
    own = next((s for s in ("train", "train-streams", "dev") if (cache / f"{s}.index.jsonl").exists()), "train")
    if not same_search(split_search(extra, "train"), split_search(cache, own)):
        raise ValueError(f"{extra}'s train split was made by another search than {cache}'s {own} split: "
                         f"{split_search(extra, 'train')} against {split_search(cache, own)}")
    return IqdCache(extra, "train")


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


LOSS_AFTER_SPEECH_S = 0.3  # the training crop's margin after the speech


def loss_frames(u) -> int:
    """Frames of a cached utterance that the loss sees (from speech start on, `frame_mask`): up to
    0.3 s after its speech, as the cropped training utterances end; in a continuous recording the
    segment may go on into the next utterance, whose label may differ."""
    return min(u.n_enc, int(np.ceil((u.speech_end + LOSS_AFTER_SPEECH_S) / frame_seconds())))


def collate_e2e(cache: IqdCache, idx: list[int]) -> dict[str, torch.Tensor]:
    utts = [cache.utts[i] for i in idx]
    enc = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(cache.enc(i)) for i in idx], batch_first=True)
    u_max = max(1, max(len(u.tokens) for u in utts))
    tokens = torch.zeros(len(idx), u_max, dtype=torch.long)
    frames = torch.full((len(idx), u_max), 10**6, dtype=torch.long)
    for b, u in enumerate(utts):
        tokens[b, : len(u.tokens)] = torch.tensor(u.tokens, dtype=torch.long)
        frames[b, : len(u.tokens)] = torch.tensor(u.token_frames, dtype=torch.long)
    return {"enc": enc, "tokens": tokens, "token_frames": frames,
            "n_tokens": torch.tensor([len(u.tokens) for u in utts]), "n_frames": torch.tensor([loss_frames(u) for u in utts]),
            "speech_start": torch.tensor([u.speech_start for u in utts]),
            "directed": torch.tensor([float(u.directed) for u in utts])}


def collate_fbank(cache: IqdCache, idx: list[int]) -> dict[str, torch.Tensor]:
    utts = [cache.utts[i] for i in idx]
    return {"feats": torch.nn.utils.rnn.pad_sequence([torch.from_numpy(cache.fbank(i)) for i in idx], batch_first=True),
            "n_frames": torch.tensor([loss_frames(u) for u in utts]),
            "speech_start": torch.tensor([u.speech_start for u in utts]),
            "directed": torch.tensor([float(u.directed) for u in utts])}


def frame_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, T) logits of an e2e or independent model on a collated batch."""
    if isinstance(model, E2E_MODELS):
        return model(batch["enc"], batch["tokens"], batch["token_frames"], batch["n_tokens"])
    return model(batch["feats"])


@torch.no_grad()
def posteriors(model: torch.nn.Module, cache: IqdCache, batch_size: int = 64) -> list[np.ndarray]:
    """P(directed) per encoder frame of every utterance of a cached split."""
    model.eval()
    collate = collate_e2e if isinstance(model, E2E_MODELS) else collate_fbank
    out: list[np.ndarray] = [np.zeros(0)] * len(cache)
    order = sorted(range(len(cache)), key=lambda i: cache.utts[i].n_enc)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        b = collate(cache, idx)
        p = torch.sigmoid(frame_logits(model, b)).numpy()
        for k, i in enumerate(idx):
            n = cache.utts[i].n_enc
            out[i] = p[k, :n] if p.shape[1] >= n else np.pad(p[k], (0, n - p.shape[1]), mode="edge")
    return out


def tracks_of(cache: IqdCache, probs: list[np.ndarray], policy: DecisionPolicy = DecisionPolicy()) -> list[Track]:
    """One track per cached utterance; the onset as the runtime finds it with the policy's
    speech-onset gate (on the cached fbank, the utterance whole from its first frame)."""
    fs = frame_seconds()
    silent = cache.silent_tokens
    tracks = []
    for i, (u, p) in enumerate(zip(cache.utts, probs)):
        onset, endpoint = onset_and_endpoint(u.token_frames, u.speech_start, u.speech_end, fs, u.tokens, silent)
        onset = onset_frame(onset, cache.fbank(i), u.n_enc, policy, fs)
        tracks.append(Track(p, onset, endpoint, u.speech_start, u.directed, fs))
    return tracks


def _new_model(cfg: TrainConfig, train_set: IqdCache, vocab_size: int) -> torch.nn.Module:
    mcfg = dataclasses.replace(cfg.model, kind=cfg.kind, enc_dim=train_set.enc_dim, vocab_size=vocab_size)
    if cfg.kind == "e2e":
        return IqJoint(mcfg)
    model = AcousticDetector(mcfg)
    rng = random.Random(cfg.seed)
    sample = np.concatenate([train_set.fbank(i) for i in rng.sample(range(len(train_set)), min(500, len(train_set)))])
    model.feat_mean.copy_(torch.from_numpy(sample.mean(0)))
    model.feat_std.copy_(torch.from_numpy(sample.std(0)).clamp(min=1e-3))
    return model


def augment_e2e(cfg: TrainConfig, batch: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A collated e2e training batch with cfg's perturbations (`iqd.augment`); unchanged when all are off."""
    b = dict(batch)
    b["enc"] = time_mask(b["enc"], b["n_frames"], cfg.time_masks, cfg.time_mask_max_frames, gen)
    b["tokens"], b["token_frames"], b["n_tokens"] = drop_tokens(b["tokens"], b["token_frames"], b["n_tokens"],
                                                                cfg.token_dropout, gen)
    return b


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """The learning rate at `progress` (0..1) through the budget."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * min(1.0, progress))))
    return cfg.lr


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameters and buffers."""
    for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(p, 1.0 - decay)
        else:
            e.copy_(p)


def _fit_frames(cfg: TrainConfig, model: torch.nn.Module, train_set: IqdCache, dev_set: IqdCache,
                log: csv.writer, progress: bool) -> torch.nn.Module:
    collate = collate_e2e if cfg.kind == "e2e" else collate_fbank
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    ema = copy.deepcopy(model) if cfg.ema_decay > 0 else None
    scored = ema if ema is not None else model  # what dev sees and the checkpoint keeps
    fs = frame_seconds()
    lengths = [u.n_enc for u in train_set.utts]
    start = time.monotonic()
    best, best_eer = copy.deepcopy(scored.state_dict()), float("inf")
    probe = DecisionPolicy(smoothing_ms=200.0)
    steps = 0
    for epoch in range(cfg.max_epochs):
        model.train()
        total, n = 0.0, 0
        batches = _batches(lengths, cfg.batch_size, rng)
        for k, idx in enumerate(batches):
            done = max((time.monotonic() - start) / 60 / cfg.max_minutes, (epoch + k / len(batches)) / cfg.max_epochs)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, done)
            b = collate(train_set, idx)
            if cfg.kind == "e2e":
                b = augment_e2e(cfg, b, gen)
            logits = frame_logits(model, b)
            mask = frame_mask(b["n_frames"], b["speech_start"], fs, logits.shape[1])
            loss = masked_bce(logits, b["directed"], mask)
            if cfg.endpoint_weight > 0:
                loss = loss + cfg.endpoint_weight * endpoint_bce(logits, b["directed"], b["n_frames"])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            steps += 1
            if ema is not None:  # the usual warm-up: a short memory while the weights move fast
                ema_update(ema, model, min(cfg.ema_decay, (1 + steps) / (10 + steps)))
            total, n = total + loss.item(), n + 1
            if (time.monotonic() - start) / 60 >= cfg.max_minutes:
                break
        dev_eer = eer(final_scores(tracks_of(dev_set, posteriors(scored, dev_set)), probe), [u.directed for u in dev_set.utts])
        minutes = (time.monotonic() - start) / 60
        log.writerow([epoch, f"{minutes:.2f}", f"{total / max(1, n):.4f}", f"{dev_eer:.4f}"])
        if progress:
            print(f"{cfg.kind} epoch {epoch}: loss {total / max(1, n):.4f} dev EER (at endpoint) {100 * dev_eer:.1f}% "
                  f"{minutes:.1f} min", flush=True)
        if dev_eer < best_eer:
            best, best_eer = copy.deepcopy(scored.state_dict()), dev_eer
        if minutes >= cfg.max_minutes:
            break
    model.load_state_dict(best)
    return model.eval()


def cascade_texts(cfg: TrainConfig, train_set: IqdCache) -> tuple[list[str], list[bool]]:
    """Reference texts of every training utterance, plus the ASR's transcripts of the cached ones."""
    from runtime.manifest import read_manifest

    texts, labels = [], []
    for u in read_manifest(Path(cfg.corpus) / "train.jsonl"):
        if u.directed is not None:
            texts.append(u.text)
            labels.append(bool(u.directed))
    texts += [u.hyp for u in train_set.utts]
    labels += [u.directed for u in train_set.utts]
    return texts, labels


def _fit_cascade(cfg: TrainConfig, model: TextClassifier, train_set: IqdCache, dev_set: IqdCache,
                 log: csv.writer, progress: bool) -> TextClassifier:
    texts, labels = cascade_texts(cfg, train_set)
    y_all = torch.tensor(labels, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    rng = random.Random(cfg.seed)
    dev_labels = [u.directed for u in dev_set.utts]
    best, best_eer = copy.deepcopy(model.state_dict()), float("inf")
    start = time.monotonic()
    for epoch in range(cfg.max_epochs):
        order = list(range(len(texts)))
        rng.shuffle(order)
        total = 0.0
        for s in range(0, len(order), 256):
            idx = order[s : s + 256]
            ids, offsets = model.encode([texts[i] for i in idx])
            logits = model(ids, offsets)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y_all[idx])
            loss = loss + cfg.weight_decay * model.weights.weight.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        dev_eer = eer(model.predict([u.hyp for u in dev_set.utts]).numpy(), dev_labels)
        log.writerow([epoch, f"{(time.monotonic() - start) / 60:.2f}", f"{total / len(texts):.4f}", f"{dev_eer:.4f}"])
        if progress:
            print(f"cascade epoch {epoch}: loss {total / len(texts):.4f} dev EER {100 * dev_eer:.1f}%", flush=True)
        if dev_eer < best_eer:
            best, best_eer = copy.deepcopy(model.state_dict()), dev_eer
        if (time.monotonic() - start) / 60 >= cfg.max_minutes:
            break
    model.load_state_dict(best)
    return model.eval()


def cascade_results(model: TextClassifier, cache: IqdCache, theta: float) -> dict[str, Any]:
    """The cascade on a cached split: one score per utterance on its transcript, decided at the endpoint."""
    fs = frame_seconds()
    scores = model.predict([u.hyp for u in cache.utts]).numpy()
    labels = [u.directed for u in cache.utts]
    at = [onset_and_endpoint(u.token_frames, u.speech_start, u.speech_end, fs)[1] for u in cache.utts]
    return {"eer": eer(scores, labels), **fa_fr(scores >= theta, labels),
            **latency_stats(at, [u.speech_start for u in cache.utts]), "offline_eer": eer(scores, labels)}


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train one detector; returns OUT/model.pt."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_set, dev_set = prepare(cfg, progress)
    vocab_size = train_set.vocab_size
    with open(out / "log.csv", "w", newline="") as f:
        log = csv.writer(f)
        log.writerow(["epoch", "minutes", "train_loss", "dev_eer"])
        if cfg.kind == "cascade":
            model = _fit_cascade(cfg, TextClassifier(dataclasses.replace(cfg.model, kind="cascade")), train_set,
                                 dev_set, log, progress)
        else:
            model = _fit_frames(cfg, _new_model(cfg, train_set, vocab_size), train_set, dev_set, log, progress)
    if cfg.kind == "cascade":
        scores = model.predict([u.hyp for u in dev_set.utts]).numpy()
        theta = eer_threshold(scores, [u.directed for u in dev_set.utts])
        policy, search = DecisionPolicy(theta, theta, 0.0, 0.0, 0.0), {}
        dev = cascade_results(model, dev_set, theta)
    else:
        tracks = tracks_of(dev_set, posteriors(model, dev_set))
        policy, theta, search = choose_policy(tracks, cfg.max_median_latency_s)
        dev = evaluate_policy(tracks, policy, theta)
        dev.pop("curve")
    ckpt = {"kind": cfg.kind, "config": model.cfg.to_dict(), "model": model.state_dict(), "policy": policy.to_dict(),
            "theta": theta, "dev": dev, "train_config": cfg.to_dict(), "n_params": model.n_params(),
            "frame_s": frame_seconds(), "n_token_slots": N_TOKEN_SLOTS}
    torch.save(ckpt, out / "model.pt")
    (out / "dev.json").write_text(json.dumps({"dev": dev, "policy": policy.to_dict(), "theta": theta,
                                              "policy_search": search, "n_params": model.n_params()}, indent=1) + "\n")
    if progress:
        print(f"{cfg.kind}: {model.n_params():,} parameters; dev EER {100 * dev['eer']:.1f}%, "
              f"median latency {dev['median_s']:.2f} s; policy {policy}", flush=True)
    return out / "model.pt"


def load_detector(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("ensemble"):  # iqd/fusion.py: several joint networks averaged
        model = IqEnsemble([IqdConfig.from_dict(c) for c in ckpt["ensemble"]])
    else:
        model = {"e2e": IqJoint, "independent": AcousticDetector, "cascade": TextClassifier}[ckpt["kind"]](
            IqdConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt
