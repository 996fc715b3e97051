"""The intended-query detectors: the E2E IQ joint network, the independent acoustic baseline, the
cascade's text classifier.

E2E (`IqJoint`), after Chang et al. 2022: per encoder frame of the frozen ASR, a joint of
  - the ASR's projected encoder output (what the runtime's encoder graph returns), and
  - the label history: a GRU over the tokens the ASR emitted so far (the stateless prediction
    network sees only two tokens; the GRU summarises all of them),
followed by a small GRU over frames (the decision needs more than the encoder's 1.3 s of left
context) and a logistic output: P(directed) per frame. About 100k parameters.

Training runs whole utterances (`forward`); the runtime runs `step`, one frame with explicit
state (`IqdState`); both compute the same function (tests/iqd/test_model.py). The token GRU runs
once over the token sequence in `forward`; frame t reads its state after the tokens emitted at
frames <= t. In `step`, the K token slots of a frame are fed in order, slot value 0 (the blank)
meaning no token, so a frame with no emission leaves the token state as it was.

Independent (`AcousticDetector`): fbank -> the ASR's subsampling geometry (two 3x3 stride-2
convolutions: frame t reads fbank frames 4t .. 4t+6, so its frames line up with the encoder's)
-> GRU -> P(directed) per frame. No ASR.

Cascade (`TextClassifier`): logistic regression on hashed word uni/bigrams and character
trigrams of the final transcript.

`IqEnsemble`: several E2E joint networks (seeds) averaged in logit space, one step graph.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runtime.config import reject_unknown
from runtime.iqd import IqdState
from runtime.iqd_text import text_features  # noqa: F401  (the cascade's, shared with the runtime)
from runtime.search import MAX_SYMBOLS_PER_FRAME

N_TOKEN_SLOTS = MAX_SYMBOLS_PER_FRAME  # tokens one frame may emit (greedy search's most; the beam's one)


@dataclass(frozen=True)
class IqdConfig:
    kind: str = "e2e"  # e2e | independent | cascade
    enc_dim: int = 256  # the ASR's joiner_dim (its projected encoder output)
    vocab_size: int = 32
    token_dim: int = 32
    token_hidden: int = 64
    joint_dim: int = 96
    frame_hidden: int = 64
    dropout: float = 0.2  # on the joint (e2e) and on the projected features (independent), training only
    enc_dropout: float = 0.0  # e2e: on the ASR's encoder output before its projection, training only
    # independent
    n_mels: int = 80
    conv_channels: int = 16
    acoustic_dim: int = 96
    acoustic_hidden: int = 96
    # cascade
    n_hash: int = 1 << 15

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IqdConfig":
        """Rebuild from `to_dict()`; an unknown key is an error (a checkpoint saved before a field
        existed gets its default)."""
        reject_unknown(cls, d, "IqdConfig keys")
        return cls(**d)


def token_history_index(token_frames: torch.Tensor, n_tokens: torch.Tensor, n_frames: int) -> torch.Tensor:
    """For each frame, how many tokens were emitted at or before it.

    Args:
        token_frames: (N, U) frame of each token (padding ignored past n_tokens); n_tokens: (N,).
    Returns:
        (N, T) int64 in [0, U].
    """
    u = torch.arange(token_frames.shape[1])
    valid = u[None, :] < n_tokens[:, None]  # (N, U)
    t = torch.arange(n_frames)
    return ((token_frames[:, None, :] <= t[None, :, None]) & valid[:, None, :]).sum(-1)  # (N, T)


class IqJoint(nn.Module):
    """The E2E detector head (see the module docstring)."""

    def __init__(self, cfg: IqdConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.token_dim)
        self.token_gru = nn.GRU(cfg.token_dim, cfg.token_hidden, batch_first=True)
        self.enc_proj = nn.Linear(cfg.enc_dim, cfg.joint_dim)
        self.tok_proj = nn.Linear(cfg.token_hidden, cfg.joint_dim, bias=False)
        self.frame_gru = nn.GRU(cfg.joint_dim, cfg.frame_hidden, batch_first=True)
        self.out = nn.Linear(cfg.frame_hidden, 1)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch: int = 1) -> IqdState:
        return IqdState(torch.zeros(1, batch, self.cfg.token_hidden), torch.zeros(1, batch, self.cfg.frame_hidden))

    def _joint(self, enc: torch.Tensor, tok_h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.enc_proj(enc) + self.tok_proj(tok_h))

    def forward(self, enc: torch.Tensor, tokens: torch.Tensor, token_frames: torch.Tensor,
                n_tokens: torch.Tensor) -> torch.Tensor:
        """Whole utterances.

        Args:
            enc: (N, T, enc_dim); tokens: (N, U) emitted ids; token_frames: (N, U) frame of each;
            n_tokens: (N,).
        Returns:
            (N, T) logits of P(directed).
        """
        n, t, _ = enc.shape
        enc = F.dropout(enc, self.cfg.enc_dropout, self.training)
        h0 = torch.zeros(1, n, self.cfg.token_hidden)
        if tokens.shape[1]:
            hs, _ = self.token_gru(self.embed(tokens), h0)  # (N, U, H): state after each token
        else:
            hs = enc.new_zeros(n, 0, self.cfg.token_hidden)
        hs = torch.cat([h0.transpose(0, 1), hs], dim=1)  # (N, 1+U, H): index k = after k tokens
        idx = token_history_index(token_frames, n_tokens, t)  # (N, T)
        tok_h = torch.gather(hs, 1, idx[..., None].expand(-1, -1, hs.shape[-1]))  # (N, T, H)
        y, _ = self.frame_gru(F.dropout(self._joint(enc, tok_h), self.cfg.dropout, self.training))
        return self.out(y)[..., 0]

    def step(self, enc: torch.Tensor, tokens: torch.Tensor, state: IqdState) -> tuple[torch.Tensor, IqdState]:
        """One frame. enc: (N, enc_dim); tokens: (N, K) emitted at this frame in order, 0 = none.

        Returns (N,) P(directed) and the next state.
        """
        logit, state = self.step_logit(enc, tokens, state)
        return torch.sigmoid(logit), state

    def step_logit(self, enc: torch.Tensor, tokens: torch.Tensor, state: IqdState) -> tuple[torch.Tensor, IqdState]:
        """`step` before the sigmoid: (N,) logits of P(directed) and the next state."""
        h = state.token_state
        for k in range(tokens.shape[1]):
            tok = tokens[:, k : k + 1]  # (N, 1)
            _, new = self.token_gru(self.embed(tok), h)
            h = torch.where((tok[:, 0] != 0)[None, :, None], new, h)
        x = self._joint(enc, h[0])[:, None]  # (N, 1, joint)
        y, f = self.frame_gru(x, state.frame_state)
        return self.out(y[:, 0])[:, 0], IqdState(h, f)


class IqEnsemble(nn.Module):
    """Several E2E joint networks (other seeds) read as one: the mean of their logits.

    Same interface as `IqJoint` (`forward`, `step`, `init_state`), so training code, the fusion,
    the export and the runtime take either. Its step state is the members' states concatenated
    along the hidden axis (token_state (1, N, sum of token_hidden), frame_state likewise), so the
    exported graph keeps `IqJoint`'s inputs and outputs. The members share enc_dim and vocab_size.
    """

    def __init__(self, cfgs: list[IqdConfig]) -> None:
        super().__init__()
        if len(cfgs) < 2:
            raise ValueError("an ensemble needs at least two joint networks")
        if len({(c.enc_dim, c.vocab_size) for c in cfgs}) != 1:
            raise ValueError("the joint networks of an ensemble must read the same ASR (enc_dim, vocab_size)")
        self.cfg = cfgs[0]
        self.members = nn.ModuleList(IqJoint(c) for c in cfgs)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch: int = 1) -> IqdState:
        states = [m.init_state(batch) for m in self.members]
        return IqdState(torch.cat([s.token_state for s in states], -1), torch.cat([s.frame_state for s in states], -1))

    def forward(self, enc: torch.Tensor, tokens: torch.Tensor, token_frames: torch.Tensor,
                n_tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(enc, tokens, token_frames, n_tokens) for m in self.members]).mean(0)

    def step(self, enc: torch.Tensor, tokens: torch.Tensor, state: IqdState) -> tuple[torch.Tensor, IqdState]:
        tok = state.token_state.split([m.cfg.token_hidden for m in self.members], -1)
        frame = state.frame_state.split([m.cfg.frame_hidden for m in self.members], -1)
        logits, nexts = [], []
        for m, t, f in zip(self.members, tok, frame):
            logit, s = m.step_logit(enc, tokens, IqdState(t, f))
            logits.append(logit)
            nexts.append(s)
        return torch.sigmoid(torch.stack(logits).mean(0)), IqdState(
            torch.cat([s.token_state for s in nexts], -1), torch.cat([s.frame_state for s in nexts], -1))


E2E_MODELS = (IqJoint, IqEnsemble)


class AcousticDetector(nn.Module):
    """The independent baseline: fbank in, P(directed) per 40 ms frame out; with its own CMVN."""

    def __init__(self, cfg: IqdConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        self.conv = nn.Sequential(nn.Conv2d(1, c, 3, stride=2), nn.ReLU(), nn.Conv2d(c, c, 3, stride=2), nn.ReLU())
        n_freq = ((cfg.n_mels - 3) // 2 + 1 - 3) // 2 + 1
        self.proj = nn.Linear(c * n_freq, cfg.acoustic_dim)
        self.gru = nn.GRU(cfg.acoustic_dim, cfg.acoustic_hidden, batch_first=True)
        self.out = nn.Linear(cfg.acoustic_hidden, 1)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats: (N, T, n_mels) -> (N, T') logits, T' = asr.model.encoder_frames(T)."""
        x = self.conv(((feats - self.feat_mean) / self.feat_std).unsqueeze(1))  # (N, C, T', F')
        n, c, t, f = x.shape
        x = torch.relu(self.proj(x.transpose(1, 2).reshape(n, t, c * f)))
        y, _ = self.gru(F.dropout(x, self.cfg.dropout, self.training))
        return self.out(y)[..., 0]


class TextClassifier(nn.Module):
    """The cascade's classifier: logistic regression on hashed n-gram counts (an EmbeddingBag sum)."""

    def __init__(self, cfg: IqdConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.weights = nn.EmbeddingBag(cfg.n_hash, 1, mode="sum")
        nn.init.zeros_(self.weights.weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Flat feature ids and per-text offsets (EmbeddingBag's format) -> (N,) logits."""
        return self.weights(ids, offsets)[:, 0] + self.bias

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [text_features(t, self.cfg.n_hash) for t in texts]
        offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
        return torch.tensor([i for x in ids for i in x], dtype=torch.long), offsets

    @torch.no_grad()
    def predict(self, texts: list[str]) -> torch.Tensor:
        return torch.sigmoid(self(*self.encode(texts)))


def masked_bce(logits: torch.Tensor, directed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the frames where mask is True (after speech start, inside the utterance).

    logits, mask: (N, T); directed: (N,) float, the utterance's label for all its frames.
    """
    target = directed[:, None].expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def endpoint_bce(logits: torch.Tensor, directed: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of each utterance's last frame (n_frames - 1): its posterior at the
    end of the speech, where an undecided segment's decision is forced.

    logits: (N, T); directed: (N,) float; n_frames: (N,) >= 1.
    """
    last = torch.gather(logits, 1, (n_frames - 1).clamp(min=0)[:, None])[:, 0]
    return F.binary_cross_entropy_with_logits(last, directed)


def frame_mask(n_frames: torch.Tensor, speech_start_s: torch.Tensor, frame_s: float, t_max: int) -> torch.Tensor:
    """(N, t_max) True for frames that end after speech start and lie inside the utterance (n_frames)."""
    t = torch.arange(t_max)
    ends = (t + 1) * frame_s
    return (ends[None, :] > speech_start_s[:, None]) & (t[None, :] < n_frames[:, None])
