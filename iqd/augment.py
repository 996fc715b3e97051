"""Training-time perturbations of the E2E detector's cached inputs (issue 5: the detector overfits
its cached training set: the training loss keeps falling while the dev EER does not).

The ASR is frozen and its outputs cached, so the detector sees the very same encoder frames and
label history every epoch. These perturb a collated batch (`iqd.train.collate_e2e`) afresh each
time, like SpecAugment on the ASR's features, but on what the detector reads:

- `time_mask`: spans of encoder frames set to zero (the frames carry nothing; the label history
  and the GRU state carry on through them);
- `drop_tokens`: label-history tokens deleted at random, as an ASR that missed them would.

Each takes a torch.Generator so a run is reproducible, and leaves padding alone. None runs at
inference: the exported graph and the runtime never see them.
"""
from __future__ import annotations

import torch


def time_mask(enc: torch.Tensor, n_frames: torch.Tensor, n_masks: int, max_frames: int,
              gen: torch.Generator) -> torch.Tensor:
    """Zero `n_masks` spans of 1..max_frames encoder frames per utterance, inside its first n_frames.

    Args:
        enc: (N, T, J); n_frames: (N,) valid frames of each row.
    Returns:
        a new (N, T, J) tensor (enc is not modified).
    """
    if n_masks <= 0 or max_frames <= 0:
        return enc
    n, t, _ = enc.shape
    width = torch.randint(1, max_frames + 1, (n, n_masks), generator=gen)  # (N, M)
    room = (n_frames[:, None] - width).clamp(min=0)  # a span starts where it fits
    start = (torch.rand(n, n_masks, generator=gen) * (room + 1)).long()  # (N, M) in [0, room]
    frames = torch.arange(t)[None, None, :]  # (1, 1, T)
    hit = (frames >= start[..., None]) & (frames < (start + width)[..., None])  # (N, M, T)
    hit = hit.any(1) & (frames[0] < n_frames[:, None])  # (N, T)
    return enc.masked_fill(hit[..., None], 0.0)


def drop_tokens(tokens: torch.Tensor, token_frames: torch.Tensor, n_tokens: torch.Tensor, p: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Delete each of the first n_tokens tokens of a row with probability p; the rest keep their
    order and frames, padding follows them (token 0, frame 10**6, as `collate_e2e` pads).

    Args:
        tokens, token_frames: (N, U); n_tokens: (N,).
    Returns:
        tokens, token_frames (N, U) and n_tokens (N,) after the deletions.
    """
    if p <= 0:
        return tokens, token_frames, n_tokens
    n, u = tokens.shape
    valid = torch.arange(u)[None, :] < n_tokens[:, None]
    keep = valid & (torch.rand(n, u, generator=gen) >= p)  # (N, U)
    # stable compaction: kept tokens first, in order
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    new_n = keep.sum(1)
    pad = torch.arange(u)[None, :] >= new_n[:, None]
    new_tokens = torch.gather(tokens, 1, order).masked_fill(pad, 0)
    new_frames = torch.gather(token_frames, 1, order).masked_fill(pad, 10**6)
    return new_tokens, new_frames, new_n
