"""The HEAR tagger (Kaushal et al., EACL 2023): a hybrid unidirectional/bidirectional LSTM encoder
with a slot head and an intent head on each path, and the Adaptive Restart Module.

    words ──TokenEncoder──> x ──uni LSTM (state kept per token)──> u ──uni heads──> newest tag, intent
                                                                    │
                                   on a restart: bi LSTM over u[:t] ──bi heads──> all tags, intent
                                                                    │
                              ARM(u_t, softmax(uni tag logits_t)) ──> P(a restart changes a label)

Token representation: a word embedding (unseen words map to `<unk>`) concatenated with a
character CNN (max-pooled over the word's letters), so unseen words still have a spelling. Each
word's vector depends on that word alone, so a stream encodes each new word once.

One class covers every row of the benchmark, by `TaggerConfig.kind`:
- "hybrid" (`n_uni_layers`, `n_bi_layers` > 0): HEAR, and its restart-every-token and every-k
  variants; the bidirectional layers read the unidirectional outputs.
- "bi" (`n_uni_layers` = 0): the bidirectional encoder restarted at every token (the naive
  baseline); its bidirectional layers read the token vectors.
- "uni" (`n_bi_layers` = 0): unidirectional only; never relabels.

Streaming state is explicit (STYLE.md): `init_state(n) -> TaggerState`, `step(x, state) -> (u, TaggerState)`;
`step` applied token by token reproduces `uni(x)` over the whole sequence, which
tests/tagging/test_model.py checks.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from runtime.tagger import TaggerState  # the state is named once, on the runtime side


@dataclass(frozen=True)
class TaggerConfig:
    """Everything needed to rebuild the model; saved in checkpoints and the export manifest."""

    n_words: int = 2  # table sizes, filled in from the data by the recipe
    n_chars: int = 2
    n_slots: int = 1
    n_intents: int = 1
    word_dim: int = 100
    char_dim: int = 16
    char_channels: int = 32
    char_kernel: int = 3
    n_uni_layers: int = 1
    uni_dim: int = 256
    n_bi_layers: int = 1
    bi_dim: int = 128  # per direction
    arm_hidden: int = 32
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.n_uni_layers < 0 or self.n_bi_layers < 0 or self.n_uni_layers + self.n_bi_layers == 0:
            raise ValueError("need n_uni_layers >= 0, n_bi_layers >= 0 and at least one layer")
        if self.char_kernel % 2 == 0:
            raise ValueError(f"char_kernel must be odd (same-length convolution), not {self.char_kernel}")

    @property
    def kind(self) -> str:
        return "bi" if not self.n_uni_layers else "uni" if not self.n_bi_layers else "hybrid"

    @property
    def token_dim(self) -> int:
        return self.word_dim + self.char_channels

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TaggerConfig":
        return cls(**d)


# The benchmark's three architectures at comparable sizes: the hybrid swaps the bi model's first
# bidirectional layer (2 x 128) for a unidirectional one of the same width (256).
KINDS: dict[str, TaggerConfig] = {
    "hybrid": TaggerConfig(n_uni_layers=1, uni_dim=256, n_bi_layers=1, bi_dim=128),
    "bi": TaggerConfig(n_uni_layers=0, n_bi_layers=2, bi_dim=128),
    "uni": TaggerConfig(n_uni_layers=2, uni_dim=256, n_bi_layers=0),
}


class TokenEncoder(nn.Module):
    """Word embedding + character CNN: (N, T) word ids, (N, T, C) char ids -> (N, T, token_dim)."""

    def __init__(self, cfg: TaggerConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(cfg.n_words, cfg.word_dim, padding_idx=0)
        self.chars = nn.Embedding(cfg.n_chars, cfg.char_dim, padding_idx=0)
        self.conv = nn.Conv1d(cfg.char_dim, cfg.char_channels, cfg.char_kernel, padding=cfg.char_kernel // 2)

    def forward(self, word_ids: torch.Tensor, char_ids: torch.Tensor) -> torch.Tensor:
        n, t, c = char_ids.shape
        ch = self.chars(char_ids.reshape(n * t, c)).transpose(1, 2)  # (N*T, char_dim, C)
        # ReLU outputs are >= 0, so zeroing the padding before the max pools over real letters
        # only: a word's vector does not depend on how far its batch was padded.
        feats = F.relu(self.conv(ch)) * (char_ids.reshape(n * t, 1, c) != 0)
        feats = feats.max(dim=2).values.reshape(n, t, -1)
        return torch.cat([self.words(word_ids), feats], dim=-1)


class Tagger(nn.Module):
    def __init__(self, cfg: TaggerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = TokenEncoder(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.n_uni_layers:
            self.uni = nn.LSTM(cfg.token_dim, cfg.uni_dim, cfg.n_uni_layers, batch_first=True)
            self.uni_slot = nn.Linear(cfg.uni_dim, cfg.n_slots)
            self.uni_intent = nn.Linear(cfg.uni_dim, cfg.n_intents)
        if cfg.n_bi_layers:
            bi_in = cfg.uni_dim if cfg.n_uni_layers else cfg.token_dim
            self.bi = nn.LSTM(bi_in, cfg.bi_dim, cfg.n_bi_layers, batch_first=True, bidirectional=True)
            self.bi_slot = nn.Linear(2 * cfg.bi_dim, cfg.n_slots)
            self.bi_intent = nn.Linear(2 * cfg.bi_dim, cfg.n_intents)
        if cfg.kind == "hybrid":
            self.arm = nn.Sequential(nn.Linear(cfg.uni_dim + cfg.n_slots, cfg.arm_hidden), nn.Tanh(),
                                     nn.Linear(cfg.arm_hidden, 1))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------ unidirectional path

    def init_state(self, n: int = 1) -> TaggerState:
        z = torch.zeros(self.cfg.n_uni_layers, n, self.cfg.uni_dim)
        return TaggerState(z, z.clone())

    def step(self, x: torch.Tensor, state: TaggerState) -> tuple[torch.Tensor, TaggerState]:
        """One token. x: (N, token_dim) -> u: (N, uni_dim) and the next state."""
        u, (h, c) = self.uni(x[:, None], (state.h, state.c))
        return u[:, 0], TaggerState(h, c)

    def uni_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, T, token_dim) -> u: (N, T, uni_dim); causal, so padding after a sequence is harmless."""
        return self.uni(x)[0]

    def uni_heads(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u: (..., uni_dim) -> slot logits (..., n_slots), intent logits (..., n_intents) for that prefix."""
        return self.uni_slot(u), self.uni_intent(u)

    def arm_logit(self, u: torch.Tensor, uni_slot_logits: torch.Tensor) -> torch.Tensor:
        """u: (..., uni_dim), uni_slot_logits: (..., n_slots) -> (...) logit of 'a restart now changes a label'."""
        return self.arm(torch.cat([u, uni_slot_logits.softmax(-1)], dim=-1))[..., 0]

    # ------------------------------------------------------------ bidirectional path

    def bi_forward(self, v: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """v: (N, T, bi input) -> slot logits (N, T, n_slots), intent logits (N, n_intents).

        lengths: (N,) to pack a padded batch (the backward direction must start at each
        sequence's own end); None when every sequence fills T (the export's case).
        """
        if lengths is None:
            b = self.bi(v)[0]
            pooled = b.mean(dim=1)
        else:
            packed = pack_padded_sequence(v, lengths.cpu(), batch_first=True, enforce_sorted=False)
            b = pad_packed_sequence(self.bi(packed)[0], batch_first=True, total_length=v.shape[1])[0]
            mask = (torch.arange(v.shape[1], device=v.device)[None] < lengths[:, None].to(v.device))[..., None]
            pooled = (b * mask).sum(1) / lengths[:, None].to(b)
        b = self.drop(b)
        return self.bi_slot(b), self.bi_intent(self.drop(pooled))

    # ------------------------------------------------------------ whole sequences

    def forward(self, word_ids: torch.Tensor, char_ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training / offline pass over padded sequences. Returns the logits each path gives:
        "uni_slot" (N, T, S) and "uni_intent" (N, T, I) (the intent after each prefix), and
        "bi_slot" (N, T, S), "bi_intent" (N, I) over the whole sequence, as the model has them."""
        x = self.drop(self.tokens(word_ids, char_ids))
        out: dict[str, torch.Tensor] = {}
        v = x
        if self.cfg.n_uni_layers:
            u = self.uni_forward(x)
            out["u"] = u
            out["uni_slot"], out["uni_intent"] = self.uni_heads(self.drop(u))
            v = u
        if self.cfg.n_bi_layers:
            out["bi_slot"], out["bi_intent"] = self.bi_forward(self.drop(v), lengths)
        return out

    def offline(self, word_ids: torch.Tensor, char_ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best labels for complete sequences: slot ids (N, T), intent ids (N,)."""
        out = self.forward(word_ids, char_ids, lengths)
        if self.cfg.n_bi_layers:
            return out["bi_slot"].argmax(-1), out["bi_intent"].argmax(-1)
        last = (lengths - 1).clamp(min=0)
        return out["uni_slot"].argmax(-1), out["uni_intent"][torch.arange(len(lengths)), last].argmax(-1)

    def prefix_relabels(self, u: torch.Tensor) -> torch.Tensor:
        """Bidirectional slot ids of every prefix of one sequence, in one batch.

        u: (T, uni_dim) -> (T, T) where row t holds the labels of prefix u[:t + 1] (then -1).
        """
        t = u.shape[0]
        lengths = torch.arange(1, t + 1)
        v = u[None].expand(t, t, -1) * (torch.arange(t)[None] < lengths[:, None])[..., None]
        ids = self.bi_forward(v, lengths)[0].argmax(-1)
        return ids.masked_fill(torch.arange(t)[None] >= lengths[:, None], -1)
