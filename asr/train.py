"""`heed train asr`: the transducer recipe.

RNN-T loss (torchaudio) plus a weighted CTC loss, SpecAugment, AdamW with linear warm-up and
inverse-square-root decay, gradient clipping, batches bounded by padded frames, features cached
on disk (`asr.data`), bf16 autocast on a GPU. A checkpoint is written every
`checkpoint_minutes` and at the end, and `--resume` continues from the newest one (same batch
order, same step). Rank 0 writes `log.csv` (losses, learning rate, dev WER) and the
checkpoints; under `torchrun` every rank trains on its own share of each epoch's batches (DDP,
gloo on the CPU, nccl on a GPU).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from asr.data import FeatureCache, build_cache, collate, duration_batches, feature_stats, spec_augment
from asr.backend import TorchTransducer, decode_utterances
from asr.model import ConformerConfig, Transducer
from asr.tokenizer import Tokenizer, train_tokenizer
from runtime.manifest import read_manifest


@dataclass(frozen=True)
class TrainConfig:
    corpus: str = "data/base"  # folder with train.jsonl and dev.jsonl
    out: str = "exp/asr"
    vocab_size: int = 256
    # "char": characters and the word boundary. The 256 unigram pieces of the first runs were
    # nearly characters anyway, but with word-initial twins ("▁s" and "s"); every encoder probed
    # stayed on the CTC plateau with them, while characters left it within 1,000 steps (docs/history/asr.md).
    tokenizer: str = "unigram"
    max_frames: int = 6000  # padded fbank frames per batch (per rank)
    peak_lr: float = 2e-3
    warmup_steps: int = 500
    weight_decay: float = 1e-3
    ctc_weight: float = 0.2
    grad_clip: float = 5.0
    max_epochs: int = 30
    max_minutes: float = 100.0  # wall-clock budget of this run (a resumed run gets a fresh budget)
    # The learning rate falls linearly to zero over the last cooldown_minutes of the budget: a run
    # cut off by the clock ends annealed instead of at whatever rate the decay had reached.
    cooldown_minutes: float = 0.0
    checkpoint_minutes: float = 10.0
    dev_utts: int = 300  # dev utterances decoded for the WER in the log
    crop_margin_s: float = 0.3  # training audio kept around the speech; None keeps everything
    train_limit: int | None = None  # use only the first N training utterances (tests, smoke runs)
    spec_augment: bool = True
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    model: ConformerConfig = field(default_factory=ConformerConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        return cls(model=ConformerConfig.from_dict(d.pop("model")), **d)


PRESETS: dict[str, TrainConfig] = {
    # Trains on a 2-core CPU in under two hours.
    "small": TrainConfig(
        # Runs 1-3 (256 unigram pieces) stayed on the CTC plateau for 2,600 steps; probes found the
        # tokenizer to be what kept them there (docs/history/asr.md). Characters, and the pre-norm stack
        # that learned fastest in the probes.
        tokenizer="char", max_minutes=95.0, cooldown_minutes=20.0, peak_lr=2e-3, warmup_steps=500, max_frames=4000,
        # no dropout: it cost 17% of a CPU step, and three epochs of augmented audio do not overfit
        model=ConformerConfig(d_model=144, n_heads=4, n_layers=6, ffn_dim=576, conv_kernel=15, dropout=0.0,
                              layer_out_norm=False, log_mel_floor=4.0),
    ),
    # For an accelerator: under 10M parameters, longer schedule.
    "base": TrainConfig(
        max_frames=40000, peak_lr=2e-3, warmup_steps=1500, max_epochs=60, max_minutes=600.0,
        model=ConformerConfig(d_model=192, n_heads=4, n_layers=10, ffn_dim=768, conv_kernel=31, dropout=0.1),
    ),
    # Seconds on a CPU: tests and smoke runs.
    "tiny": TrainConfig(
        max_frames=4000, peak_lr=1e-2, warmup_steps=20, max_epochs=200, max_minutes=5.0, dev_utts=8,
        crop_margin_s=None, spec_augment=False,
        model=ConformerConfig(d_model=64, n_heads=2, n_layers=2, ffn_dim=128, conv_kernel=7, subsampling_channels=16,
                              decoder_dim=64, joiner_dim=64, chunk_frames=4, left_chunks=2, dropout=0.0),
    ),
}


def lr_at(step: int, cfg: TrainConfig, minutes: float = 0.0) -> float:
    """Linear warm-up to peak_lr, then decay with 1/sqrt(step); in the last cfg.cooldown_minutes of
    the wall-clock budget (`minutes` into the run), a linear ramp down to zero on top."""
    step = max(step, 1)
    lr = cfg.peak_lr * min(step / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / step))
    if cfg.cooldown_minutes > 0:
        lr *= min(1.0, max(0.0, (cfg.max_minutes - minutes) / cfg.cooldown_minutes))
    return lr


def _rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def prepare(cfg: TrainConfig) -> tuple[Tokenizer, Path]:
    """Tokenizer and feature cache under cfg.out; reused when present. Rank 0 only."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(cfg.corpus)
    tok_path = out / "tokens.model"
    if not tok_path.exists():
        texts = [u.text for u in read_manifest(corpus / "train.jsonl")][: cfg.train_limit]
        train_tokenizer(texts, out / "tokens", cfg.vocab_size, cfg.tokenizer)
    cache = out / "cache"
    build_cache(corpus / "train.jsonl", cache, "train", crop_margin_s=cfg.crop_margin_s, limit=cfg.train_limit)
    build_cache(corpus / "dev.jsonl", cache, "dev", limit=cfg.dev_utts)
    return Tokenizer(tok_path), cache


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def dev_wer(model: Transducer, dev: FeatureCache, tok: Tokenizer) -> float:
    import jiwer

    asr = TorchTransducer(model, tok.pieces())  # on the model's device, in eval mode
    refs, hyps = [], []
    for start in range(0, len(dev), 16):
        items = [dev[i] for i in range(start, min(len(dev), start + 16))]
        for ids, (_, text) in zip(decode_utterances(asr, [x for x, _ in items]), items):
            hyps.append(tok.decode(ids))
            refs.append(text)
    model.train()
    return float(jiwer.wer(refs, hyps))


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Run (or continue) training; returns the path of the final checkpoint."""
    rank, world = _rank()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    out = Path(cfg.out)
    if rank == 0:
        tok, cache = prepare(cfg)
    if world > 1:
        dist.barrier()
    if rank != 0:
        tok, cache = Tokenizer(out / "tokens.model"), out / "cache"
    if tok.vocab_size != cfg.model.vocab_size:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=tok.vocab_size))
    train_set, dev_set = FeatureCache(cache, "train"), FeatureCache(cache, "dev")
    targets = [tok.encode(u.text) for u in train_set.utts]

    torch.manual_seed(cfg.seed)
    model = Transducer(cfg.model)
    model.encoder.set_cmvn(*feature_stats(train_set, seed=cfg.seed, floor=cfg.model.log_mel_floor))  # same on every rank: same sample
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.peak_lr, weight_decay=cfg.weight_decay)
    step, epoch, batch_in_epoch = 0, 0, 0
    ckpt_path = out / "last.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ConformerConfig.from_dict(ckpt["config"]) != cfg.model:  # fields added later take their defaults
            raise ValueError(f"{ckpt_path} was trained with another model config; use another --out")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if rank == 0:
        print(f"training {model.n_params():,} parameters on {len(train_set):,} utterances, device {device}, "
              f"world_size {world}, from step {step}", flush=True)
    amp = device.type == "cuda"

    log_path = out / "log.csv"
    new_log = not log_path.exists()
    log_file = open(log_path, "a", newline="") if rank == 0 else None
    log = csv.writer(log_file) if log_file else None
    if log and new_log:
        log.writerow(["step", "epoch", "minutes", "lr", "rnnt", "ctc", "frames", "dev_wer"])

    def checkpoint(tag: str, wer: float | None) -> None:
        payload = {
            "config": cfg.model.to_dict(), "train_config": cfg.to_dict(), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
            "dev_wer": wer,
        }
        _save(ckpt_path, payload)
        if tag != "last":
            _save(out / f"{tag}.pt", payload)

    start = time.monotonic()
    last_ckpt = start
    gen = torch.Generator().manual_seed(cfg.seed + rank)
    n_frames = [u.n_frames for u in train_set.utts]
    done = False
    bar = None
    while epoch < cfg.max_epochs and not done:
        batches = duration_batches(n_frames, cfg.max_frames, seed=cfg.seed + epoch, rank=rank, world_size=world)
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), initial=batch_in_epoch, desc=f"epoch {epoch}", dynamic_ncols=True)
        sums = [0.0, 0.0, 0]
        while batch_in_epoch < len(batches):
            feats, feat_lens, ys, y_lens = collate([(train_set[i][0], targets[i]) for i in batches[batch_in_epoch]])
            if cfg.spec_augment:
                feats = spec_augment(feats, feat_lens, generator=gen)
            minutes = (time.monotonic() - start) / 60
            if world > 1:  # every rank must use the same clock: the learning rate and the stop depend on it
                clock = torch.tensor([minutes], device=device, dtype=torch.float64)
                dist.all_reduce(clock, op=dist.ReduceOp.MAX)
                minutes = float(clock.item())
            lr = lr_at(step + 1, cfg, minutes)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                rnnt, ctc = ddp(feats.to(device), feat_lens.to(device), ys.to(device), y_lens.to(device))
                loss = rnnt + cfg.ctc_weight * ctc
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            batch_in_epoch += 1
            sums[0] += rnnt.item(); sums[1] += ctc.item(); sums[2] += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rnnt=f"{rnnt.item():.2f}", ctc=f"{ctc.item():.2f}", lr=f"{lr:.1e}")
            # `minutes` is the clock every rank agreed on before this step, so all ranks stop together
            over = minutes >= cfg.max_minutes
            if (time.monotonic() - last_ckpt) / 60 >= cfg.checkpoint_minutes or over:
                if batch_in_epoch >= len(batches):
                    epoch, batch_in_epoch = epoch + 1, 0
                _log_and_checkpoint(rank, log, log_file, model, dev_set, tok, device, step, epoch, minutes, cfg, sums, checkpoint)
                sums = [0.0, 0.0, 0]
                last_ckpt = time.monotonic()
                if over:
                    done = True
                    break
        if bar is not None:
            bar.close()
        if not done:
            epoch, batch_in_epoch = epoch + 1, 0
            if epoch >= cfg.max_epochs:
                _log_and_checkpoint(rank, log, log_file, model, dev_set, tok, device, step, epoch,
                                    (time.monotonic() - start) / 60, cfg, sums, checkpoint)
    if log_file:
        log_file.close()
    if world > 1:
        _check_ranks_agree(model)
    return ckpt_path


def _check_ranks_agree(model: Transducer) -> None:
    """DDP must leave every rank with the same weights; fail loudly if not."""
    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    lo, hi = total.clone(), total.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.allclose(lo, hi, rtol=0, atol=1e-6):
        raise RuntimeError(f"DDP ranks disagree on the weights: checksum {float(lo)} vs {float(hi)}")


def _log_and_checkpoint(rank, log, log_file, model, dev_set, tok, device, step, epoch, minutes, cfg, sums, checkpoint):
    if rank != 0:
        return
    wer = dev_wer(model, dev_set, tok) if len(dev_set) else None
    n = max(1, sums[2])
    log.writerow([step, epoch, f"{minutes:.2f}", f"{lr_at(step, cfg, minutes):.3e}", f"{sums[0] / n:.4f}", f"{sums[1] / n:.4f}",
                  cfg.max_frames, "" if wer is None else f"{wer:.4f}"])
    log_file.flush()
    checkpoint("last", wer)
    print(f"step {step} epoch {epoch} {minutes:.1f} min: rnnt {sums[0] / n:.3f} ctc {sums[1] / n:.3f} dev WER {wer}", flush=True)
