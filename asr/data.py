"""Training data: fbank features cached on disk, duration-bucketed batches, SpecAugment.

The cache of one split is two files under `CACHE/`: `SPLIT.feats.npy`, every utterance's
frames concatenated as float16 (n_frames_total, n_mels), read memory-mapped, and
`SPLIT.index.jsonl`, one line per utterance with its id, text, offset and frame count. Features
are computed once with `asr.features.fbank` (the runtime's twin computes the same ones), so an
epoch costs no audio decoding. Training utterances may be cropped to their speech plus a margin
of silence: the corpus pads every utterance with up to a second of silence on each side, which
costs compute and teaches the model nothing after the first few hundred milliseconds.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from asr.features import fbank
from runtime.manifest import Utterance, audio_path, read_manifest
from runtime.audio import read_audio
from runtime.features import FbankConfig


@dataclass(frozen=True)
class CachedUtt:
    id: str
    text: str
    offset: int
    n_frames: int


def _features_of(job: tuple[str, float | None, float | None, dict]) -> np.ndarray:
    path, start, end, cfg = job
    samples, sr = read_audio(path)
    samples = samples.mean(axis=1)
    fcfg = FbankConfig.from_dict(cfg)
    if sr != fcfg.sample_rate:
        raise ValueError(f"{path}: cache expects {fcfg.sample_rate} Hz audio, got {sr}")
    if start is not None:
        samples = samples[max(0, int(start * sr)) : int(end * sr)]
    return fbank(torch.from_numpy(samples), fcfg).numpy().astype(np.float16)


def build_cache(
    manifest: str | Path,
    cache_dir: str | Path,
    split: str,
    cfg: FbankConfig = FbankConfig(),
    crop_margin_s: float | None = None,
    limit: int | None = None,
    workers: int = 2,
) -> Path:
    """Compute and store the features of every utterance of `manifest`; returns the index path.

    A finished cache (its index exists) is reused as it is.
    crop_margin_s: keep only [speech_start - margin, speech_end + margin] of each utterance.
    """
    cache_dir = Path(cache_dir)
    index_path = cache_dir / f"{split}.index.jsonl"
    if index_path.exists():
        return index_path
    cache_dir.mkdir(parents=True, exist_ok=True)
    utts: list[Utterance] = read_manifest(manifest)[:limit]
    jobs = []
    for u in utts:
        start = end = None
        if crop_margin_s is not None and u.speech_start is not None and u.speech_end is not None:
            start, end = u.speech_start - crop_margin_s, u.speech_end + crop_margin_s
        jobs.append((str(audio_path(manifest, u)), start, end, cfg.to_dict()))
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the train extra
        tqdm = lambda it, **_: it  # noqa: E731
    if workers <= 1 or len(jobs) < 200:  # a pool's start-up costs more than it saves on small sets
        feats = [_features_of(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            feats = list(tqdm(pool.imap(_features_of, jobs, chunksize=16), total=len(jobs), desc=f"fbank {split}"))
    lengths = [len(f) for f in feats]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    tmp = cache_dir / f"{split}.feats.tmp.npy"
    np.save(tmp, np.concatenate(feats) if feats else np.zeros((0, cfg.n_mels), np.float16))
    tmp.replace(cache_dir / f"{split}.feats.npy")
    lines = [
        json.dumps({"id": u.id, "text": u.text, "offset": int(o), "n_frames": n})
        for u, o, n in zip(utts, offsets, lengths)
    ]
    tmp_index = index_path.with_suffix(".tmp")
    tmp_index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp_index.replace(index_path)  # written last: its presence means the cache is complete
    return index_path


class FeatureCache:
    """One split of a cache: `len`, `[i] -> (features (T, n_mels) float32 tensor, text)`."""

    def __init__(self, cache_dir: str | Path, split: str) -> None:
        cache_dir = Path(cache_dir)
        self.feats = np.load(cache_dir / f"{split}.feats.npy", mmap_mode="r")
        with open(cache_dir / f"{split}.index.jsonl", encoding="utf-8") as f:
            self.utts = [CachedUtt(**json.loads(line)) for line in f if line.strip()]

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        u = self.utts[i]
        x = np.asarray(self.feats[u.offset : u.offset + u.n_frames], dtype=np.float32)
        return torch.from_numpy(x), u.text


def feature_stats(
    cache: FeatureCache, max_utts: int = 2000, seed: int = 0, floor: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per mel bin over (a random sample of) a cache's frames.

    floor: the model's `log_mel_floor`, applied first so the statistics match what it normalises.
    """
    rng = random.Random(seed)
    idx = rng.sample(range(len(cache)), min(max_utts, len(cache)))
    frames = torch.cat([cache[i][0] for i in idx]).double()  # (n_frames, n_mels)
    if floor is not None:
        frames = frames.clamp(min=floor)
    return frames.mean(dim=0).float(), frames.std(dim=0).float()


def duration_batches(
    n_frames: Sequence[int], max_frames: int, seed: int, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """Shuffled batches whose padded size (longest x count) stays under `max_frames`.

    Utterances are sorted by length inside random pools of 100 batches' worth, so a batch holds
    similar lengths (little padding) while batch order stays random. With DDP every rank gets
    the same number of batches (a few are dropped at the end), or the ranks would deadlock.
    """
    rng = random.Random(seed)
    order = list(range(len(n_frames)))
    rng.shuffle(order)
    pool = max(1, 100 * max_frames // max(1, int(np.mean(n_frames)) if n_frames else 1))
    batches: list[list[int]] = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p : p + pool], key=lambda i: n_frames[i])
        batch: list[int] = []
        for i in chunk:
            if batch and max(n_frames[j] for j in batch + [i]) * (len(batch) + 1) > max_frames:
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    n = len(batches) // world_size * world_size
    return batches[rank:n:world_size]


def collate(items: Sequence[tuple[torch.Tensor, list[int]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch. Returns feats (N, T, n_mels), feat_lens (N,), targets (N, U) int64, target_lens (N,)."""
    feats = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True)
    feat_lens = torch.tensor([len(x) for x, _ in items])
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(y, dtype=torch.long) for _, y in items], batch_first=True)
    target_lens = torch.tensor([len(y) for _, y in items])
    return feats, feat_lens, targets, target_lens


def spec_augment(
    feats: torch.Tensor, lens: torch.Tensor, n_freq_masks: int = 2, max_freq: int = 15,
    time_mask_ratio: float = 0.04, max_time: int = 20, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) without time warping: frequency and time bands set to the mean.

    Args:
        feats: (N, T, F); lens: (N,) valid frames. Returns a masked copy.
    """
    out = feats.clone()
    n, _, n_freq = feats.shape
    for b in range(n):
        fill = out[b, : lens[b]].mean()
        for _ in range(n_freq_masks):
            w = int(torch.randint(0, max_freq + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, n_freq - w), (1,), generator=generator))
            out[b, :, f0 : f0 + w] = fill
        for _ in range(math.ceil(time_mask_ratio * int(lens[b]) / max(1, max_time) * 2)):
            w = int(torch.randint(0, max_time + 1, (1,), generator=generator))
            t0 = int(torch.randint(0, max(1, int(lens[b]) - w), (1,), generator=generator))
            out[b, t0 : t0 + w] = fill
    return out

