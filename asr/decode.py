"""Torch-side decoding for training-time evaluation (the runtime has its own numpy search)."""
from __future__ import annotations

import torch

from asr.model import Transducer
from asr.tokenizer import BLANK_ID


@torch.no_grad()
def greedy_decode_batch(
    model: Transducer, feats: torch.Tensor, feat_lens: torch.Tensor, max_symbols_per_frame: int = 3
) -> list[list[int]]:
    """Greedy transducer search over whole utterances under the training chunk mask.

    Args:
        feats: (N, T, n_mels); feat_lens: (N,).
    Returns:
        token ids per utterance (no blanks).
    """
    ctx = model.cfg.context_size
    enc, enc_lens = model.encoder(feats, feat_lens)
    enc = model.encoder_proj(enc)  # (N, T', J)
    n = feats.shape[0]
    hyps = [[BLANK_ID] * ctx for _ in range(n)]
    dec = model.decoder(torch.tensor([h[-ctx:] for h in hyps], device=feats.device))[:, 0]  # (N, J)
    for t in range(enc.shape[1]):
        active = enc_lens > t
        for _ in range(max_symbols_per_frame):
            best = model.joiner(enc[:, t], dec).argmax(dim=-1)  # (N,)
            emit = (best != BLANK_ID) & active
            if not bool(emit.any()):
                break
            for i in torch.nonzero(emit).flatten().tolist():
                hyps[i].append(int(best[i]))
            new = model.decoder(torch.tensor([h[-ctx:] for h in hyps], device=feats.device))[:, 0]
            dec = torch.where(emit[:, None], new, dec)
    return [h[ctx:] for h in hyps]
