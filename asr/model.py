"""A streaming conformer transducer: chunked attention over a bounded left context, causal convolutions.

Training runs the whole utterance at once under a chunk mask (`Encoder.forward`); inference
runs chunk by chunk with explicit caches (`Encoder.step`). Both compute the same function:
an encoder frame sees its own chunk and `left_chunks` chunks before it, never later chunks, and
the convolutions are causal, so feeding chunks through `step` reproduces `forward`.

Timing. The subsampling front end (two 3x3 convolutions of stride 2) turns 4 fbank frames
(40 ms) into one encoder frame; frame t reads fbank frames 4t .. 4t+6, so a chunk of
`chunk_frames` encoder frames needs `4 * chunk_frames + 3` fbank frames and advances by
`4 * chunk_frames`: 30 ms of look-ahead past the chunk, inside the 40 ms the design allows.

Prediction network: stateless (the embedding of the last `context_size` tokens through a
grouped convolution), as in icefall and sherpa-onnx. The joiner adds the projected encoder
and decoder outputs; the projections belong to the encoder and decoder so that search projects
each frame and each context once (sherpa-onnx's contract).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from asr.tokenizer import BLANK_ID
from runtime.asr import EncoderState

SUBSAMPLING = 4
SUBSAMPLING_PAD = 3  # extra fbank frames past a chunk that its last encoder frame reads


@dataclass(frozen=True)
class ConformerConfig:
    """Everything needed to rebuild the model; saved in checkpoints and ONNX metadata."""

    n_mels: int = 80
    vocab_size: int = 256
    d_model: int = 144
    n_heads: int = 4
    n_layers: int = 6
    ffn_dim: int = 576
    conv_kernel: int = 15
    subsampling_channels: int = 64
    chunk_frames: int = 8  # encoder frames per chunk: 8 x 40 ms = 320 ms
    left_chunks: int = 4  # chunks of left context each frame may attend to
    decoder_dim: int = 256
    joiner_dim: int = 256
    context_size: int = 2
    dropout: float = 0.1
    # True: every layer ends with a LayerNorm, as in the conformer paper. False: a pre-norm stack
    # (the residual stream is never renormalised) with one LayerNorm after the last layer.
    layer_out_norm: bool = True
    # Log-mel values are raised to at least this before normalisation. Digitally silent frames
    # give log(FLT_EPSILON) = -15.9, far below any microphone's noise floor; left alone they
    # make up 5% of the training frames and double the CMVN standard deviation. 4.0 is about
    # the level that Kaldi's dither of one int16 step gives. None keeps the raw values.
    log_mel_floor: float | None = None

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.chunk_frames < 1 or self.left_chunks < 0 or self.conv_kernel < 2:
            raise ValueError("need chunk_frames >= 1, left_chunks >= 0, conv_kernel >= 2")

    @property
    def left_frames(self) -> int:
        """Encoder frames of attention cache per layer."""
        return self.chunk_frames * self.left_chunks

    @property
    def chunk_input_frames(self) -> int:
        """Fbank frames a chunk advances by (32 = 320 ms by default)."""
        return self.chunk_frames * SUBSAMPLING

    @property
    def step_input_frames(self) -> int:
        """Fbank frames one `step` reads: the chunk plus its look-ahead (35 by default)."""
        return self.chunk_input_frames + SUBSAMPLING_PAD

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConformerConfig":
        return cls(**d)


def encoder_frames(n_fbank_frames: torch.Tensor | int) -> torch.Tensor | int:
    """Encoder frames the subsampling gives for n fbank frames (0 below 7)."""
    if isinstance(n_fbank_frames, int):
        return max(0, ((n_fbank_frames - 3) // 2 + 1 - 3) // 2 + 1) if n_fbank_frames >= 7 else 0
    return torch.clamp(((n_fbank_frames - 3) // 2 + 1 - 3) // 2 + 1, min=0) * (n_fbank_frames >= 7)


class Subsampling(nn.Module):
    """(N, T, n_mels) -> (N, T', d_model), T' = encoder_frames(T); no padding, so chunks compose."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        c = cfg.subsampling_channels
        self.conv = nn.Sequential(nn.Conv2d(1, c, 3, stride=2), nn.ReLU(), nn.Conv2d(c, c, 3, stride=2), nn.ReLU())
        n_freq = ((cfg.n_mels - 3) // 2 + 1 - 3) // 2 + 1
        self.out = nn.Linear(c * n_freq, cfg.d_model)
        # The residual stream starts normalised, so that no layer's contribution is drowned by it.
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.unsqueeze(1))  # (N, C, T', F')
        n, c, t, f = x.shape
        return self.norm(self.out(x.transpose(1, 2).reshape(n, t, c * f)))


class FeedForward(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.ffn_dim), nn.SiLU(),
            nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_dim, cfg.d_model), nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ChunkAttention(nn.Module):
    """Multi-head self-attention with a learned relative-position bias per head.

    The bias is indexed by key position minus query position, which ranges over
    [-(left_frames + chunk_frames - 1), chunk_frames - 1] for every pair the chunk mask allows.
    """

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.max_back = cfg.left_frames + cfg.chunk_frames - 1
        self.rel_bias = nn.Parameter(torch.zeros(cfg.n_heads, self.max_back + cfg.chunk_frames))
        self.dropout = cfg.dropout

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """(H, Tq, Tk) bias for absolute positions; pairs outside the range are clamped (they are masked)."""
        rel = (k_pos[None, :] - q_pos[:, None]).clamp(-self.max_back, self.rel_bias.shape[1] - 1 - self.max_back)
        return self.rel_bias[:, rel + self.max_back]

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """q_in: (N, Tq, D); kv_in: (N, Tk, D); mask: (N or 1, 1, Tq, Tk) bool, True = may attend; bias: (H, Tq, Tk)."""
        n, tq, d = q_in.shape
        tk = kv_in.shape[1]
        w_q, w_kv = self.qkv.weight.split([d, 2 * d])  # one Linear holds all three projections
        b_q, b_kv = self.qkv.bias.split([d, 2 * d])
        q = F.linear(q_in, w_q, b_q)
        k, v = F.linear(kv_in, w_kv, b_kv).chunk(2, dim=-1)
        q = q.view(n, tq, self.n_heads, self.d_head).transpose(1, 2)  # (N, H, Tq, dh)
        k = k.view(n, tk, self.n_heads, self.d_head).transpose(1, 2)
        v = v.view(n, tk, self.n_heads, self.d_head).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head) + bias  # (N, H, Tq, Tk)
        scores = scores.masked_fill(~mask, -1e4)
        attn = torch.softmax(scores, dim=-1)
        attn = F.dropout(attn, self.dropout, self.training)
        y = (attn @ v).transpose(1, 2).reshape(n, tq, d)
        return self.out(y)


class CausalConv(nn.Module):
    """Conformer convolution module with a causal depthwise convolution and LayerNorm (no BatchNorm: it would couple frames of a batch and need running statistics)."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        d, k = cfg.d_model, cfg.conv_kernel
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Linear(d, 2 * d)
        self.depthwise = nn.Conv1d(d, d, k, groups=d)
        self.mid_norm = nn.LayerNorm(d)
        self.pointwise_out = nn.Linear(d, d)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, D); cache: (N, K-1, D) previous depthwise inputs. Returns (y, new cache)."""
        h = F.glu(self.pointwise_in(self.norm(x)), dim=-1)  # (N, T, D)
        h = torch.cat([cache, h], dim=1)  # (N, K-1+T, D)
        new_cache = h[:, h.shape[1] - cache.shape[1] :]
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)  # (N, T, D)
        h = self.pointwise_out(F.silu(self.mid_norm(h)))
        return self.dropout(h), new_cache


class ConformerLayer(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.ff1, self.ff2 = FeedForward(cfg), FeedForward(cfg)
        self.attn_norm = nn.LayerNorm(cfg.d_model)
        self.attn = ChunkAttention(cfg)
        self.conv = CausalConv(cfg)
        self.out_norm = nn.LayerNorm(cfg.d_model) if cfg.layer_out_norm else nn.Identity()
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, attn_cache: torch.Tensor, conv_cache: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N, T, D); attn_cache: (N, P, D) earlier attention inputs (P = 0 in training).

        Returns y (N, T, D) and the new caches (the last P attention inputs, the conv cache).
        """
        x = x + 0.5 * self.ff1(x)
        a = self.attn_norm(x)
        kv = torch.cat([attn_cache, a], dim=1)  # (N, P+T, D)
        x = x + self.dropout(self.attn(a, kv, mask, bias))
        new_attn_cache = kv[:, kv.shape[1] - attn_cache.shape[1] :]
        c, new_conv_cache = self.conv(x, conv_cache)
        x = x + c
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x), new_attn_cache, new_conv_cache


class Encoder(nn.Module):
    """Global feature normalisation (CMVN, kept inside the model as wenet does), subsampling, conformer layers.

    `feat_mean` and `feat_std` are buffers set from the training features before training
    (`set_cmvn`); they travel in checkpoints and in the exported graph, so no caller normalises.
    """

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        self.subsampling = Subsampling(cfg)
        self.layers = nn.ModuleList(ConformerLayer(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.Identity() if cfg.layer_out_norm else nn.LayerNorm(cfg.d_model)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole utterances under the chunk mask.

        Args:
            feats: (N, T, n_mels); feat_lens: (N,).
        Returns:
            (N, T', d_model) and lengths (N,), T' = encoder_frames(T).
        """
        cfg = self.cfg
        x = self.subsampling(self.normalize(feats))
        n, t, d = x.shape
        lens = encoder_frames(feat_lens).clamp(max=t)
        pos = torch.arange(t, device=x.device)
        chunk = pos // cfg.chunk_frames
        allowed = (chunk[None, :] <= chunk[:, None]) & (chunk[None, :] >= chunk[:, None] - cfg.left_chunks)  # (T, T)
        valid = pos[None, :] < lens[:, None]  # (N, T)
        mask = allowed[None, None] & valid[:, None, None, :]  # (N, 1, T, T)
        no_cache = x.new_zeros((n, 0, d))
        conv_cache = x.new_zeros((n, cfg.conv_kernel - 1, d))
        for layer in self.layers:
            bias = layer.attn.bias(pos, pos)
            x, _, _ = layer(x, no_cache, conv_cache, mask, bias)
        return self.final_norm(x), lens

    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-mel-bin mean and standard deviation of the training features."""
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp(min=1e-3))

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        if self.cfg.log_mel_floor is not None:
            feats = feats.clamp(min=self.cfg.log_mel_floor)
        return (feats - self.feat_mean) / self.feat_std

    def init_state(self, batch: int = 1, device: torch.device | str = "cpu") -> EncoderState:
        """The state before the first chunk (`runtime.asr.EncoderState`, of tensors)."""
        cfg = self.cfg
        return EncoderState(
            attn_cache=torch.zeros(cfg.n_layers, cfg.left_frames, batch, cfg.d_model, device=device),
            conv_cache=torch.zeros(cfg.n_layers, cfg.conv_kernel - 1, batch, cfg.d_model, device=device),
            processed_frames=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def step(self, feats: torch.Tensor, state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """One chunk. A pure function of its inputs: nothing is remembered between calls.

        Args:
            feats: (N, step_input_frames, n_mels) fbank frames: this chunk and its look-ahead.
            state: from `init_state` or the previous `step`.
        Returns:
            (N, chunk_frames, d_model) encoder output and the next state.
        """
        cfg = self.cfg
        x = self.subsampling(self.normalize(feats))  # (N, C, D)
        c, p = cfg.chunk_frames, cfg.left_frames
        # processed_frames counts fbank frames (sherpa-onnx's unit), the cache holds encoder frames.
        processed = torch.div(state.processed_frames, SUBSAMPLING, rounding_mode="floor")
        # Cache slot j holds encoder frame processed - P + j; slots before the stream's start are empty.
        slot = torch.arange(p + c, device=x.device)
        filled = slot[None, :] >= (p - processed)[:, None]  # (N, P+C)
        mask = filled[:, None, None, :].expand(-1, 1, c, -1)  # (N, 1, C, P+C)
        q_pos = torch.arange(c, device=x.device) + p
        attn_caches, conv_caches = [], []
        for i, layer in enumerate(self.layers):
            bias = layer.attn.bias(q_pos, slot)
            x, a, k = layer(x, state.attn_cache[i].transpose(0, 1), state.conv_cache[i].transpose(0, 1), mask, bias)
            attn_caches.append(a.transpose(0, 1))
            conv_caches.append(k.transpose(0, 1))
        return self.final_norm(x), EncoderState(torch.stack(attn_caches), torch.stack(conv_caches),
                                                state.processed_frames + cfg.chunk_input_frames)


class Decoder(nn.Module):
    """Stateless prediction network: embedding of the last `context_size` tokens, projected for the joiner."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.context_size = cfg.context_size
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.decoder_dim)
        self.conv = nn.Conv1d(cfg.decoder_dim, cfg.decoder_dim, cfg.context_size, groups=cfg.decoder_dim // 4, bias=False)
        self.proj = nn.Linear(cfg.decoder_dim, cfg.joiner_dim)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y: (N, U + context_size - 1) token ids, left-padded with blanks -> (N, U, joiner_dim)."""
        e = self.embedding(y).transpose(1, 2)  # (N, Dd, U+c-1)
        return self.proj(F.relu(self.conv(e).transpose(1, 2)))


class Joiner(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.out = nn.Linear(cfg.joiner_dim, cfg.vocab_size)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        """Projected encoder and decoder outputs, broadcastable -> logits (..., vocab_size)."""
        return self.out(torch.tanh(enc + dec))


class Transducer(nn.Module):
    """Encoder + stateless decoder + joiner, with an auxiliary CTC head on the encoder."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.encoder_proj = nn.Linear(cfg.d_model, cfg.joiner_dim)
        self.decoder = Decoder(cfg)
        self.joiner = Joiner(cfg)
        self.ctc = nn.Linear(cfg.d_model, cfg.vocab_size)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean per-utterance RNN-T and CTC losses (forward, so that DDP's gradient hooks see it).

        Args:
            feats: (N, T, n_mels); feat_lens: (N,); targets: (N, U) padded with anything; target_lens: (N,).
        """
        import torchaudio.functional as AF

        enc, enc_lens = self.encoder(feats, feat_lens)
        ctc_logp = F.log_softmax(self.ctc(enc), dim=-1).transpose(0, 1)  # (T', N, V)
        ctc = F.ctc_loss(ctc_logp, targets, enc_lens, target_lens, blank=BLANK_ID, reduction="sum", zero_infinity=True)
        blanks = targets.new_full((targets.shape[0], self.cfg.context_size), BLANK_ID)
        dec = self.decoder(torch.cat([blanks, targets], dim=1))  # (N, U+1, J)
        logits = self.joiner(self.encoder_proj(enc)[:, :, None], dec[:, None])  # (N, T', U+1, V)
        rnnt = AF.rnnt_loss(
            logits.float(), targets.int(), enc_lens.int(), target_lens.int(), blank=BLANK_ID, reduction="sum"
        )
        n = feats.shape[0]
        return rnnt / n, ctc / n
