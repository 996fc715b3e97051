"""A streaming encoder in Whisper tiny.en's shape, read by Whisper's unchanged decoder.

Whisper's encoder attends over a whole 30 s window, so it cannot give states while someone is
still speaking. The student is the same network (initialised from its weights, `from_whisper`)
made streaming (issue 25; trained toward the full-context encoder by `asr/distill.py`):

- **Chunked attention**: encoder frames (20 ms) are grouped in chunks of `chunk_frames`
  (16 = 320 ms); a frame attends to every frame of its own chunk and of the `left_chunks`
  chunks before it (-1: every earlier chunk of the segment), never to a later chunk.
- **Causal front end**: Whisper's two convolutions (kernel 3; the second with stride 2) are
  padded on the left only, so a chunk needs no mel frame after it. Their outputs equal
  Whisper's one mel frame pair (20 ms) earlier: the student's frame j reads what Whisper's frame
  j - 1 reads, and is trained toward it.
- **A causal log-mel floor**: Whisper floors the log-mel at 8 below the maximum of the whole
  window; the student floors it at 8 below the maximum so far in the segment (at least
  `mel_max_init`), so it takes the raw log10 mel power (`log_mel_power`) and normalises inside.
- **Positions restart at each segment**: frame j of a segment gets Whisper's position j; a
  segment has at most 1,500 frames (30 s of audio), so the caller cuts longer speech.

Two ways to run it, equal within float rounding (tests/asr/test_student.py):
    states = student(mel)                               # whole segment under the chunk mask (training)
    state = student.init_state(batch)
    states, state = student.step(mel_chunk, state)      # 2 * chunk_frames mel frames at a time
The state is a NamedTuple of tensors whose field names are the ONNX input/output names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from asr.whisper import HOP, N_FFT, EncoderBlock, Whisper, WhisperDims, mel_filters

from runtime.config import reject_unknown

LOG_FLOOR = -10.0  # log10 of the power clamp (1e-10), as Whisper
DYNAMIC_RANGE = 8.0  # decades kept below the maximum, as Whisper


class StudentError(ValueError):
    """A segment or state the student cannot take; the message says why."""


@dataclass(frozen=True)
class StudentConfig:
    chunk_frames: int = 16  # encoder frames (20 ms) per attention chunk: 320 ms
    left_chunks: int = -1  # earlier chunks a chunk attends to; -1: all of the segment so far
    # The running maximum of the log10 mel power starts here, so that the silence before the first
    # loud frame of a segment is floored near where Whisper's whole-window floor would put it
    # (speech peaks at about -1..+1.5 on the real dev set's clips at their recorded levels).
    mel_max_init: float = -1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudentConfig":
        reject_unknown(cls, d, "student config keys")
        return cls(**d)


class StudentState(NamedTuple):
    """What a segment's stream carries from one chunk to the next (B streams at the same frame).

    Shapes: P is the cached left context (grows to left_chunks * chunk_frames frames, or to the
    segment so far when left_chunks is -1), D = n_state, L = encoder layers."""

    mel_max: torch.Tensor  # (B,) running maximum of the log10 mel power
    mel_cache: torch.Tensor  # (B, n_mels, 2) the last two normalised mel frames (the first convolution's left context)
    conv_cache: torch.Tensor  # (B, D, 2) the last two outputs of the first convolution (the second's)
    key_cache: torch.Tensor  # (L, B, P, D) attention keys of the left context, per layer
    value_cache: torch.Tensor  # (L, B, P, D)
    offset: torch.Tensor  # (B,) int64: encoder frames already given in this segment (the next position)


def log_mel_power(audio: torch.Tensor, n_pad_samples: int = 0) -> torch.Tensor:
    """Whisper's log10 mel power before its floor and scaling: (n,) samples at 16 kHz -> (n_mels, n_frames).

    `normalise(x, x.max())` gives exactly asr.whisper.log_mel (tested): a centred 400-point STFT
    every 160 samples, the last frame dropped, Slaney mel, log10 clamped at 1e-10."""
    audio = F.pad(audio.float(), (0, n_pad_samples))
    stft = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    mel = mel_filters() @ (stft[..., :-1].abs() ** 2)
    return torch.clamp(mel, min=1e-10).log10()


def normalise(x: torch.Tensor, maximum: torch.Tensor | float) -> torch.Tensor:
    """Whisper's scaling of log10 mel power x given the maximum to floor against (broadcast)."""
    return (torch.maximum(x, torch.as_tensor(maximum) - DYNAMIC_RANGE) + 4.0) / 4.0


def running_max(frame_max: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """(B, T) per-frame maxima, (B,) the maximum before them -> (B, T) the maximum up to each frame.

    A lower-triangular masked max rather than torch.cummax, which ONNX has no operator for."""
    t = frame_max.shape[-1]
    later = torch.ones(t, t, dtype=torch.bool).triu(1)  # [i, s]: frame s comes after frame i
    upto = frame_max[:, None, :].masked_fill(later, float("-inf")).amax(-1)
    return torch.maximum(upto, start[:, None])


def chunk_mask(n_frames: int, chunk_frames: int, left_chunks: int) -> torch.Tensor:
    """(n_frames, n_frames) additive mask: 0 where frame i may attend to frame j, -inf elsewhere."""
    c = torch.arange(n_frames) // chunk_frames
    allowed = c[None, :] <= c[:, None]
    if left_chunks >= 0:
        allowed &= c[None, :] >= c[:, None] - left_chunks
    return torch.zeros(n_frames, n_frames).masked_fill(~allowed, float("-inf"))


class Student(nn.Module):
    """Whisper tiny.en's encoder made streaming (see the module docstring)."""

    def __init__(self, dims: WhisperDims = WhisperDims(), cfg: StudentConfig = StudentConfig()) -> None:
        super().__init__()
        if cfg.chunk_frames < 1 or cfg.left_chunks < -1:
            raise ValueError(f"chunk_frames must be >= 1 and left_chunks >= -1, got {cfg}")
        d = dims.n_state
        self.dims, self.cfg = dims, cfg
        self.conv1 = nn.Conv1d(dims.n_mels, d, 3)  # no padding: the caller pads (or caches) on the left
        self.conv2 = nn.Conv1d(d, d, 3, stride=2)
        self.audio_pos = nn.Parameter(torch.zeros(dims.n_audio_ctx, d))
        self.blocks = nn.ModuleList(EncoderBlock(d, dims.n_head) for _ in range(dims.n_audio_layer))
        self.ln_post = nn.LayerNorm(d)

    @classmethod
    def from_whisper(cls, whisper: Whisper, cfg: StudentConfig = StudentConfig()) -> "Student":
        """A student with the teacher's encoder weights (copied, not shared)."""
        student = cls(whisper.dims, cfg)
        own = {k: v for k, v in whisper.state_dict().items() if not k.startswith(("token_embedding", "text_pos",
                                                                                  "decoder_blocks", "ln."))}
        own = {k.replace("encoder_blocks.", "blocks."): v.clone() for k, v in own.items()}
        student.load_state_dict(own)
        return student

    @property
    def max_frames(self) -> int:
        """Encoder frames in one segment at most (positions restart at each segment)."""
        return self.dims.n_audio_ctx

    # ------------------------------------------------------------ whole segment (training)

    def forward(self, mel: torch.Tensor, layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """mel: (B, n_mels, T) log10 mel power (`log_mel_power`) of segments from their start, T even
        -> states (B, T / 2, D) under the chunk mask; with `layers`, the output of every block and
        the final states ([L + 1] of (B, T / 2, D))."""
        b, _, t = mel.shape
        if t % 2:
            raise StudentError(f"a segment of {t} mel frames; the student takes an even number")
        if t // 2 > self.max_frames:
            raise StudentError(f"a segment of {t // 2} encoder frames is longer than the {self.max_frames} "
                               "positions the student has; cut segments before 30 s")
        top = running_max(mel.amax(1), torch.full((b,), self.cfg.mel_max_init, dtype=mel.dtype))
        x = normalise(mel, top[:, None, :])
        x = F.gelu(self.conv1(F.pad(x, (2, 0))))
        x = F.gelu(self.conv2(F.pad(x, (2, 0)))).transpose(1, 2)  # (B, S, D)
        x = x + self.audio_pos[: x.shape[1]]
        mask = chunk_mask(x.shape[1], self.cfg.chunk_frames, self.cfg.left_chunks)
        out = []
        for block in self.blocks:
            a = block.attn
            y = block.attn_ln(x)
            x = x + a.attend(a.query(y), a.heads(a.key(y)).transpose(-1, -2), a.heads(a.value(y)), mask)
            x = x + block.mlp(block.mlp_ln(x))
            out.append(x)
        final = self.ln_post(x)
        return out + [final] if layers else final

    # ------------------------------------------------------------ chunk by chunk (streaming)

    def init_state(self, batch: int = 1) -> StudentState:
        d = self.dims
        empty = torch.zeros(d.n_audio_layer, batch, 0, d.n_state)
        return StudentState(mel_max=torch.full((batch,), self.cfg.mel_max_init),
                            mel_cache=torch.zeros(batch, d.n_mels, 2), conv_cache=torch.zeros(batch, d.n_state, 2),
                            key_cache=empty, value_cache=empty, offset=torch.zeros(batch, dtype=torch.long))

    def step(self, mel: torch.Tensor, state: StudentState) -> tuple[torch.Tensor, StudentState]:
        """mel: (B, n_mels, n) the segment's next log10 mel power frames: n = 2 * chunk_frames, or
        fewer (even) for the segment's last chunk -> states (B, n / 2, D) and the next state.

        A chunk attends to the cached left context and to itself, as `forward` does under its mask."""
        n = mel.shape[-1]
        if n % 2 or n > 2 * self.cfg.chunk_frames or n == 0:
            raise StudentError(f"a chunk of {n} mel frames; step takes an even number up to {2 * self.cfg.chunk_frames}")
        if int(state.offset.max()) + n // 2 > self.max_frames:
            raise StudentError(f"the segment passed the {self.max_frames} positions the student has; cut segments "
                               "before 30 s")
        top = running_max(mel.amax(1), state.mel_max)
        m = torch.cat([state.mel_cache, normalise(mel, top[:, None, :])], dim=2)
        c1 = torch.cat([state.conv_cache, F.gelu(self.conv1(m))], dim=2)
        x = F.gelu(self.conv2(c1)).transpose(1, 2)  # (B, n / 2, D)
        x = x + self.audio_pos[state.offset[:, None] + torch.arange(x.shape[1])]
        keep = self.cfg.left_chunks * self.cfg.chunk_frames
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            a = block.attn
            y = block.attn_ln(x)
            k = torch.cat([state.key_cache[i], a.key(y)], dim=1)
            v = torch.cat([state.value_cache[i], a.value(y)], dim=1)
            x = x + a.attend(a.query(y), a.heads(k).transpose(-1, -2), a.heads(v), None)
            x = x + block.mlp(block.mlp_ln(x))
            if keep >= 0:  # the next chunk sees left_chunks chunks: this one and those before it
                # a start of -keep, which slicing clamps at 0, rather than max(0, len - keep): a trace
                # (asr/export_student.py) keeps it dynamic, where max() would run in Python
                k, v = (k[:, -keep:], v[:, -keep:]) if keep else (k[:, :0], v[:, :0])
            keys.append(k)
            values.append(v)
        return self.ln_post(x), StudentState(top[:, -1], m[:, :, -2:], c1[:, :, -2:], torch.stack(keys),
                                             torch.stack(values), state.offset + x.shape[1])
