"""`heed train asr --config student`: the streaming student (asr/student.py) distilled from Whisper's encoder.

No transcripts: the target of every training item is what Whisper tiny.en's own encoder, with
the whole segment in view, makes of the same audio (the teacher's final states; optionally every
block's output too). Any audio serves, so the mix is real people (data/real/train.jsonl, label
free), synthetic sentences (a corpus build's train split) and noise or silence alone, under heavy
augmentation (speed, pitch, room, noise, telephone band, level). Each item is followed by
`pad_s` of zeros, as the second pass encodes it.

Checkpoints are chosen on the real dev set, never on the loss: every `eval_every` steps each dev
clip is decoded by Whisper's unchanged decoder over the student's states (the second pass's
search and guards, runtime.whisper.SecondPass, with the positions after the segment filled as
it fills them) and the WER of the spoken forms is logged per source. The learning rate warms up,
then falls linearly to `final_lr_fraction` of its peak at `max_steps`.

Writes under `out`: log.csv, last.pt (everything needed to resume: weights, optimizer, step,
random states), best.pt (the student with the lowest dev WER so far) and whisper/ (the files
the decoder's search reads). `--resume` continues from last.pt and refuses another config.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from runtime.config import reject_unknown
from asr.student import Student, StudentConfig, StudentError, log_mel_power, normalise
from asr.whisper import HOP, SAMPLE_RATE, Whisper

# keys a resumed run may change: they steer the run, not what it computes
RESUMABLE_CHANGES = ("out", "max_minutes", "checkpoint_minutes", "num_threads")
LOSSES = ("mse", "cosine", "mse+cosine")
FILLS = ("teacher", "student")


@dataclass(frozen=True)
class DistillConfig:
    out: str = "exp/student"
    # manifests of training audio (their texts are never read) and the share of items from each:
    # real people with and without transcripts (heed corpus import realspeech / unlabelled), and
    # synthetic sentences (the train split of heed corpus build)
    train: tuple[str, ...] = ("data/real/train.jsonl", "data/unlabelled/train.jsonl", "data/synth/train.jsonl")
    train_weights: tuple[float, ...] = (0.3, 0.2, 0.5)
    dev: str = "data/real/dev.jsonl"  # real people with transcripts: measuring and choosing only
    noise_share: float = 0.08  # items of noise, hum or silence alone
    max_item_s: float = 8.0  # longer clips are cropped at random
    batch_items: int = 3
    # A share of the steps train on one long item instead: clips of one pool end to end with short
    # pauses, up to long_item_s, so that the positions late in a segment are trained too (the real
    # dev set's LibriVox readings run 50 s, read in pieces of up to 28 s).
    p_long: float = 0.25
    long_item_s: float = 26.0
    pad_s: float = 2.0  # zeros after each item, as the second pass encodes a segment
    lead_s: float = 0.5  # up to this much silence before an item's audio (uniform)
    p_speed: float = 0.5  # speed perturbation, tempo and pitch together, factor in speed_range
    speed_range: tuple[float, float] = (0.9, 1.1)
    p_pitch: float = 0.3  # pitch shift at constant tempo, semitones in +-pitch_semitones
    pitch_semitones: float = 3.0
    p_reverb: float = 0.3
    p_noise: float = 0.4
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_telephone: float = 0.3  # 300-3400 Hz band and 8 kHz mu-law
    gain_db: tuple[float, float] = (-25.0, 0.0)  # speech peak level below full scale
    lr: float = 3e-5
    warmup_steps: int = 100
    max_steps: int = 3000
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss: str = "mse"  # on the final states: "mse", "cosine" (1 - cosine per frame) or "mse+cosine"
    layer_weight: float = 0.0  # weight of each block's output toward the teacher's (MSE over the teacher's variance)
    freeze_layers: int = 0  # > 0: the front end (convolutions, positions) and this many lowest blocks stay Whisper's
    eval_every: int = 250  # steps between dev WER measurements (0: none)
    eval_limit: int = 0  # dev clips measured (0: all)
    fill: str = "teacher"  # whose states of a constant input fill the positions after a segment
    max_minutes: float = 0.0  # wall-clock budget of this run (0: until max_steps)
    checkpoint_minutes: float = 10.0
    seed: int = 0
    num_threads: int = 1
    model: StudentConfig = field(default_factory=StudentConfig)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if len(self.train) != len(self.train_weights) or not self.train:
            raise ValueError(f"train ({len(self.train)} manifests) and train_weights ({len(self.train_weights)}) "
                             "must name the same, non-zero number of sources")
        if not 0 <= self.freeze_layers <= 4 or self.batch_items < 1 or self.max_steps < 1:
            raise ValueError("freeze_layers must be 0-4, batch_items and max_steps at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DistillConfig":
        d = dict(d)
        reject_unknown(cls, d, "student training settings")
        model = StudentConfig.from_dict(d.pop("model", {}))
        tuples = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
        return cls(model=model, **{**d, **tuples})


PRESETS: dict[str, DistillConfig] = {
    # On one thread of a 2-core CPU: docs/student.md has the measured curve.
    "student": DistillConfig(),
    # Seconds on a CPU: tests (a small random teacher, generated audio, no dev set).
    "student-tiny": DistillConfig(out="exp/student-tiny", max_item_s=1.0, batch_items=2, pad_s=0.2, lr=3e-3,
                                  warmup_steps=1, max_steps=30, eval_every=0, noise_share=0.0, p_long=0.2,
                                  long_item_s=1.5, lead_s=0.1,
                                  model=StudentConfig(chunk_frames=4)),
}


def lr_at(step: int, cfg: DistillConfig) -> float:
    """Linear warm-up over warmup_steps, then a linear fall to final_lr_fraction * lr at max_steps."""
    if step <= cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    done = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (1.0 - (1.0 - cfg.final_lr_fraction) * done)


# ---------------------------------------------------------------- audio


def load_pool(manifest: str | Path) -> list[np.ndarray]:
    """Every clip of a manifest as int16 (to keep an hour of audio in ~100 MB), texts ignored."""
    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio

    out = []
    for utt in read_manifest(manifest):
        x = load_audio(audio_path(manifest, utt))
        out.append(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
    if not out:
        raise ValueError(f"{manifest}: no clips")
    return out


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """The same tempo, pitch moved by `semitones`: a phase-vocoder stretch, then resampling back to
    the original duration (torchaudio's pitch_shift resamples by ratios with huge kernels)."""
    import torchaudio

    from corpus.augment import change_speed

    ratio = 2.0 ** (semitones / 12)
    n_fft, hop = 512, 128
    window = torch.hann_window(n_fft)
    spec = torch.stft(torch.from_numpy(x.astype(np.float32)), n_fft, hop, window=window, return_complex=True)
    phase_advance = torch.linspace(0, math.pi * hop, n_fft // 2 + 1)[:, None]
    stretched = torchaudio.functional.phase_vocoder(spec, 1.0 / ratio, phase_advance)
    y = torch.istft(stretched, n_fft, hop, window=window).numpy()
    return change_speed(y, ratio)[: len(x)]


def augment(x: np.ndarray, rng: np.random.Generator, cfg: DistillConfig, pool: list[np.ndarray],
            max_s: float | None = None) -> np.ndarray:
    """One training item's audio from a clip (float, 16 kHz): speed, crop to max_s (default
    cfg.max_item_s), pitch, lead-in silence, room, noise, telephone band, level."""
    from corpus.augment import (NOISE_KINDS, add_noise, change_speed, make_noise, reverberate, synth_rir,
                                telephone)

    sr = SAMPLE_RATE
    x = x.astype(np.float64)
    if rng.random() < cfg.p_speed:
        x = change_speed(x, float(rng.uniform(*cfg.speed_range)))
    longest = int((max_s or cfg.max_item_s) * sr)
    if len(x) > longest:
        start = int(rng.integers(0, len(x) - longest + 1))
        x = x[start : start + longest]
    if rng.random() < cfg.p_pitch:
        x = pitch_shift(x, float(rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones)))
    x = np.concatenate([np.zeros(int(rng.uniform(0, cfg.lead_s) * sr)), x])
    if rng.random() < cfg.p_reverb:
        rir = synth_rir(rng, sr, float(rng.uniform(0.15, 0.8)), drr_db=float(rng.uniform(-2, 12)),
                        distance_m=float(rng.uniform(0.3, 5)))
        x = reverberate(x, rir)
    if rng.random() < cfg.p_noise:
        kind = str(rng.choice(NOISE_KINDS))
        babble = [p.astype(np.float64) / 32767 for p in (pool[int(i)] for i in rng.integers(0, len(pool), 8))]
        x = add_noise(x, make_noise(kind, len(x), rng, sr, pool=babble), float(rng.uniform(*cfg.snr_db)))
    if rng.random() < cfg.p_telephone:
        x = telephone(x, sr)
    return _peak_at(x, float(rng.uniform(*cfg.gain_db)))


def noise_item(rng: np.random.Generator, cfg: DistillConfig, pool: list[np.ndarray]) -> np.ndarray:
    """Audio with no speech of its own: digital silence, or noise (babble included) at a random level."""
    from corpus.augment import NOISE_KINDS, make_noise

    n = int(rng.uniform(0.5, 1.0) * cfg.max_item_s * SAMPLE_RATE)
    kind = str(rng.choice(("silence",) + NOISE_KINDS))
    if kind == "silence":
        return np.zeros(n)
    babble = [p.astype(np.float64) / 32767 for p in (pool[int(i)] for i in rng.integers(0, len(pool), 8))]
    return _peak_at(make_noise(kind, n, rng, SAMPLE_RATE, pool=babble), float(rng.uniform(-60, -10)))


def _peak_at(x: np.ndarray, peak_db: float) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * (10 ** (peak_db / 20) / peak) if peak > 0 else x


class Sampler:
    """Training items drawn from the pools by weight (plus noise alone), reproducibly from `rng`."""

    def __init__(self, pools: list[list[np.ndarray]], cfg: DistillConfig) -> None:
        self.pools, self.cfg = pools, cfg
        w = np.asarray(cfg.train_weights, np.float64)
        self.weights = w / w.sum()
        self.everything = [c for p in pools for c in p]

    def item(self, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.cfg.noise_share:
            return noise_item(rng, self.cfg, self.everything)
        pool = self.pools[int(rng.choice(len(self.pools), p=self.weights))]
        clip = pool[int(rng.integers(len(pool)))].astype(np.float64) / 32767
        return augment(clip, rng, self.cfg, self.everything)

    def long_item(self, rng: np.random.Generator) -> np.ndarray:
        """Clips of one pool end to end, 0.1-0.8 s of silence between them, up to long_item_s."""
        pool = self.pools[int(rng.choice(len(self.pools), p=self.weights))]
        parts, n = [], 0
        while n < self.cfg.long_item_s * SAMPLE_RATE:
            clip = pool[int(rng.integers(len(pool)))].astype(np.float64) / 32767
            clip = clip / max(1e-4, float(np.abs(clip).max()))  # one talker's level, more or less
            parts += [clip, np.zeros(int(rng.uniform(0.1, 0.8) * SAMPLE_RATE))]
            n += len(clip) + len(parts[-1])
        return augment(np.concatenate(parts), rng, self.cfg, self.everything, self.cfg.long_item_s)

    def batch(self, rng: np.random.Generator) -> torch.Tensor:
        """(B, n_mels, T) log10 mel power of batch_items items, or of one long item (p_long of the
        batches), each followed by at least pad_s of zeros."""
        if rng.random() < self.cfg.p_long:
            return mel_batch([self.long_item(rng)], self.cfg.pad_s)
        items = [self.item(rng) for _ in range(self.cfg.batch_items)]
        return mel_batch(items, self.cfg.pad_s)


def mel_batch(items: list[np.ndarray], pad_s: float) -> torch.Tensor:
    """Items of audio -> (B, n_mels, T) log10 mel power, each item padded with zeros to the longest
    plus pad_s (more zeros after a segment only bring it closer to Whisper's 30 s window), T even."""
    n = max(len(x) for x in items) + int(round(pad_s * SAMPLE_RATE))
    n_frames = n // HOP // 2 * 2
    mels = [log_mel_power(torch.from_numpy(np.asarray(x, np.float32)), n - len(x))[:, :n_frames] for x in items]
    return torch.stack(mels)


# ---------------------------------------------------------------- teacher and loss


def teacher_states(whisper: Whisper, mel: torch.Tensor, layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
    """Whisper's encoder on the whole segment, from log10 mel power (B, n_mels, T): its own floor
    (8 below each segment's maximum) -> final states (B, T / 2, D), or with `layers` every block's
    output and the final states, as Student.forward gives them."""
    x = normalise(mel, mel.amax(dim=(1, 2), keepdim=True))
    with torch.no_grad():
        x = F.gelu(whisper.conv1(x))
        x = F.gelu(whisper.conv2(x)).transpose(1, 2)
        x = x + whisper.audio_pos[: x.shape[1]]
        out = []
        for block in whisper.encoder_blocks:
            x = block(x)
            out.append(x)
        final = whisper.ln_post(x)
    return out + [final] if layers else final


def distill_loss(student_out: list[torch.Tensor], teacher_out: list[torch.Tensor], cfg: DistillConfig) -> torch.Tensor:
    """The student's frame j against the teacher's frame j - 1 (the student's front end runs one frame
    behind, asr/student.py); lists of [every block's output..., final states] (B, S, D)."""
    s, t = student_out[-1][:, 1:], teacher_out[-1][:, :-1]
    loss = torch.zeros(())
    if "mse" in cfg.loss:
        loss = loss + F.mse_loss(s, t)
    if "cosine" in cfg.loss:
        loss = loss + (1 - F.cosine_similarity(s, t, dim=-1)).mean()
    if cfg.layer_weight:
        per_layer = [F.mse_loss(a[:, 1:], b[:, :-1]) / b.var() for a, b in zip(student_out[:-1], teacher_out[:-1])]
        loss = loss + cfg.layer_weight * torch.stack(per_layer).mean()
    return loss


def frozen_parameters(student: Student, freeze_layers: int) -> list[str]:
    """Names of the parameters that stay Whisper's: the front end and the lowest blocks."""
    if freeze_layers <= 0:
        return []
    prefixes = ("conv1.", "conv2.", "audio_pos") + tuple(f"blocks.{i}." for i in range(freeze_layers))
    return [n for n, _ in student.named_parameters() if n.startswith(prefixes)]


# ---------------------------------------------------------------- dev WER with Whisper's decoder


def reader_folder(whisper: Whisper, folder: Path) -> Path:
    """The files runtime.whisper.SecondPass reads besides its graphs (whisper.json, the mel filters,
    the vocabulary), written from the installed package into `folder`."""
    import json
    import shutil

    from asr.export_whisper import _metadata
    from asr.whisper import mel_filters, package_dir

    src = package_dir()
    folder.mkdir(parents=True, exist_ok=True)
    meta = _metadata(whisper, src, fill_value=-0.75)
    meta["files"].update(encoder="", decoder="")  # torch graphs are passed in
    np.save(folder / "mel_filters.npy", mel_filters().numpy().astype(np.float32))
    shutil.copy(src / "vocabulary.txt", folder / "tokens.txt")
    shutil.copy(src / "tokenizer.json", folder / "tokenizer.json")
    (folder / "whisper.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return folder


class _StudentFill(torch.nn.Module):
    """The student on a constant normalised mel (the SecondPass fill) -> cross keys/values."""

    def __init__(self, student: Student, whisper: Whisper) -> None:
        super().__init__()
        self.student, self.whisper = student, whisper

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # a constant normalised value v is log10 power 4v - 4, which the running floor leaves alone
        states = self.student(4.0 * mel - 4.0)
        return tuple(t for kv in self.whisper.cross_kv(states) for t in kv)


def student_reader(student: Student, whisper: Whisper, folder: Path, fill: str = "teacher"):
    """runtime.whisper.SecondPass whose encoder is the student: Whisper's unchanged decoder (torch),
    its greedy search and guards, over the student's states of the segment and `pad_s` of zeros;
    the positions after them filled with the teacher's (or the student's) states of a constant input."""
    from asr.export_whisper import TorchSession, _Decoder, _Encoder, state_names
    from runtime.whisper import SecondPass, SecondPassError

    names = state_names(whisper.dims.n_text_layer)
    fill_module = _Encoder(whisper) if fill == "teacher" else _StudentFill(student, whisper)

    class StudentReader(SecondPass):
        def encode(self, samples: np.ndarray, pad_s: float | None = None) -> tuple[list[np.ndarray], int]:
            n_pad = int(round((self.options.pad_s if pad_s is None else pad_s) * SAMPLE_RATE))
            if len(samples) > self.max_samples:
                raise SecondPassError(f"a segment of {len(samples) / SAMPLE_RATE:.1f} s is longer than the encoder reads")
            mel = log_mel_power(torch.from_numpy(np.asarray(samples, np.float32)), n_pad)
            with torch.no_grad():
                states = student(mel[None, :, : mel.shape[1] // 2 * 2])
                own = [t.numpy() for kv in whisper.cross_kv(states) for t in kv]
            # the decoder reads the fill's positions after these itself (the second pass's graph)
            return own, states.shape[1]

    return StudentReader(folder, sessions=(TorchSession(fill_module, ["mel"]),
                                           TorchSession(_Decoder(whisper), ["tokens", *names["self"], *names["cross"],
                                                                            *names["fill"]])))


def teacher_reader(whisper: Whisper, folder: Path):
    """The second pass itself in torch (Whisper's full-context encoder on the segment and pad_s of
    zeros, the same fill): the reference the student is measured against."""
    from asr.export_whisper import TorchSession, _Decoder, _Encoder, state_names
    from runtime.whisper import SecondPass

    names = state_names(whisper.dims.n_text_layer)
    return SecondPass(folder, sessions=(TorchSession(_Encoder(whisper), ["mel"]),
                                        TorchSession(_Decoder(whisper), ["tokens", *names["self"], *names["cross"],
                                                                         *names["fill"]])))


def dev_wer(reader: Any, dev: list[tuple[str, str, np.ndarray]]) -> dict[str, Any]:
    """Spoken-form WER of the reader's finals on (source, reference, audio) clips: overall and per
    source, and how many clips the guards rejected (no words)."""
    import jiwer

    from runtime.whisper import to_spoken

    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    rejected = 0
    for source, ref, audio in dev:
        result = reader.transcribe(audio)
        rejected += not result.accepted
        refs.setdefault(source, []).append(ref)
        hyps.setdefault(source, []).append(to_spoken(result.text) if result.accepted else "")
    out: dict[str, Any] = {"wer": float(jiwer.wer(sum(refs.values(), []), sum(hyps.values(), [])))}
    for source in sorted(refs):
        out[f"wer_{source}"] = float(jiwer.wer(refs[source], hyps[source]))
    out["rejected"] = rejected
    return out


def load_dev(manifest: str | Path, limit: int = 0) -> list[tuple[str, str, np.ndarray]]:
    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio

    utts = read_manifest(manifest)
    utts = utts[:limit] if limit else utts
    return [(u.source or "dev", u.text, load_audio(audio_path(manifest, u))) for u in utts]


# ---------------------------------------------------------------- the loop


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def config_differences(saved: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """Settings of a checkpoint's config that differ from cfg (besides those a resume may change)."""
    now = cfg.to_dict()
    keys = sorted(set(saved) | set(now))
    return [k for k in keys if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k)]


def train_student(cfg: DistillConfig, resume: bool = False, teacher: Whisper | None = None,
                  progress: bool = True, stop_at_step: int | None = None) -> Path:
    """Run (or continue) distillation; returns the path of best.pt (last.pt when there is no dev set).

    teacher: the full-context Whisper (default: tiny.en from the installed package); also the
    source of the student's initial weights and of the decoder that reads it on the dev set.
    stop_at_step: end this run there, as an interrupted run would (resume goes on from it)."""
    from asr.whisper import load_whisper

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    whisper = teacher if teacher is not None else load_whisper()
    whisper.eval().requires_grad_(False)
    student = Student.from_whisper(whisper, cfg.model)
    frozen = set(frozen_parameters(student, cfg.freeze_layers))
    for name, p in student.named_parameters():
        p.requires_grad_(name not in frozen)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    step, minutes_before, best = 0, 0.0, None
    last_path = out / "last.pt"
    if resume and last_path.exists():
        ckpt = torch.load(last_path, map_location="cpu", weights_only=False)
        differ = config_differences(ckpt["train_config"], cfg)
        if differ:
            raise ValueError(f"{last_path} was trained with other settings ({', '.join(differ)}); "
                             "resume with the same config or use another --out")
        student.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        step, minutes_before, best = ckpt["step"], ckpt["minutes"], ckpt["best"]
    elif last_path.exists():
        raise ValueError(f"{last_path} exists: pass --resume to continue it, or use another --out")

    sampler = Sampler([load_pool(m) for m in cfg.train], cfg)
    dev = load_dev(cfg.dev, cfg.eval_limit) if cfg.eval_every else []
    folder = reader_folder(whisper, out / "whisper") if dev else None
    log_path = out / "log.csv"
    sources = sorted({s for s, _, _ in dev})
    columns = ["step", "minutes", "lr", "loss", "wer", *[f"wer_{s}" for s in sources], "rejected"]
    if not log_path.exists():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(columns)
    n_trained = sum(p.numel() for p in student.parameters() if p.requires_grad)
    print(f"student: {n_trained:,} of {sum(p.numel() for p in student.parameters()):,} parameters trained, "
          f"{sum(len(p) for p in sampler.pools)} clips in {len(cfg.train)} pools, from step {step}", flush=True)

    start = time.monotonic()
    last_ckpt = start
    losses: list[float] = []

    def minutes() -> float:
        return minutes_before + (time.monotonic() - start) / 60

    def checkpoint() -> None:
        _save(last_path, {"train_config": cfg.to_dict(), "dims": dataclasses.asdict(whisper.dims),
                          "model": student.state_dict(), "optimizer": opt.state_dict(), "step": step,
                          "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "minutes": minutes(),
                          "best": best})

    def measure() -> None:
        nonlocal best, losses
        row: dict[str, Any] = {"step": step, "minutes": f"{minutes():.2f}", "lr": f"{lr_at(step, cfg):.3e}",
                               "loss": f"{np.mean(losses):.5f}" if losses else ""}
        if folder is not None and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            student.eval()
            result = dev_wer(student_reader(student, whisper, folder, cfg.fill), dev)
            student.train()
            row.update({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in result.items()})
            if best is None or result["wer"] < best["wer"]:
                best = {"step": step, **result}
                _save(out / "best.pt", {"train_config": cfg.to_dict(), "dims": dataclasses.asdict(whisper.dims),
                                        "model": student.state_dict(), "step": step, "dev": result})
        with open(log_path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in columns])
        print(" ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        losses = []

    if step == 0 and folder is not None:
        measure()  # the student before training: Whisper's weights under the chunk mask
    student.train()
    while step < min(cfg.max_steps, stop_at_step or cfg.max_steps):
        if cfg.max_minutes and (time.monotonic() - start) / 60 >= cfg.max_minutes:
            break
        mel = sampler.batch(rng)
        targets = teacher_states(whisper, mel, layers=True)
        lr = lr_at(step + 1, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = distill_loss(student(mel, layers=True), targets, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in student.parameters() if p.requires_grad], cfg.grad_clip)
        opt.step()
        step += 1
        losses.append(loss.item())
        if progress and step % 50 == 0:
            print(f"step {step} loss {np.mean(losses[-50:]):.5f} lr {lr:.2e} {minutes():.1f} min", flush=True)
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
            measure()
            checkpoint()
            last_ckpt = time.monotonic()
        elif (time.monotonic() - last_ckpt) / 60 >= cfg.checkpoint_minutes:
            checkpoint()
            last_ckpt = time.monotonic()
    checkpoint()
    best_path = out / "best.pt" if (out / "best.pt").exists() else last_path
    save_fp16(best_path, out / "student.fp16.pt")
    return best_path


def save_fp16(src: str | Path, dst: str | Path) -> None:
    """The student of a checkpoint alone, weights in float16 (16 MB): what a later session or the
    export needs (resuming training needs last.pt)."""
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    _save(Path(dst), {"train_config": ckpt["train_config"], "dims": ckpt["dims"], "step": ckpt["step"],
                      "dev": ckpt.get("dev"), "model": {k: v.half() for k, v in ckpt["model"].items()}})


def read_log(path: str | Path) -> list[dict[str, float]]:
    """log.csv's rows that measured the dev set, numbers as floats."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("wer")]
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]


def plot_curves(logs: dict[str, str | Path], out: str | Path, title: str = "") -> None:
    """Real-dev WER against training steps, one line per run (label -> log.csv), per source dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, path) in enumerate(logs.items()):
        rows = read_log(path)
        colour = f"C{i}"
        ax.plot([r["step"] for r in rows], [100 * r["wer"] for r in rows], "o-", color=colour, label=f"{label}: all")
        for k, style in zip(sorted(c for c in rows[0] if c.startswith("wer_")), (":", "--", "-.")):
            ax.plot([r["step"] for r in rows], [100 * r[k] for r in rows], style, color=colour, alpha=0.7,
                    label=f"{label}: {k[4:]}")
    ax.set_xlabel("training step")
    ax.set_ylabel("real dev WER (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def load_student(path: str | Path) -> Student:
    """A student from best.pt / last.pt (or an fp16 copy), in eval mode."""
    from asr.whisper import WhisperDims

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = DistillConfig.from_dict(ckpt["train_config"])
    student = Student(WhisperDims(**ckpt["dims"]), cfg.model)
    student.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    return student.eval()


__all__ = ["DistillConfig", "PRESETS", "StudentError", "train_student", "load_student", "student_reader", "dev_wer"]
