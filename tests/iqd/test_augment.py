"""The E2E detector's training perturbations (iqd/augment.py) and the training knobs around them."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from iqd.augment import drop_tokens, time_mask
from iqd.model import IqdConfig, IqJoint, endpoint_bce


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_time_mask_keeps_shapes_and_masks_only_valid_frames() -> None:
    enc = torch.randn(4, 30, 8) + 5.0  # no frame is zero by chance
    n_frames = torch.tensor([30, 12, 3, 1])
    out = time_mask(enc, n_frames, n_masks=3, max_frames=6, gen=_gen())
    assert out.shape == enc.shape
    zeroed = (out == 0).all(-1)  # (N, T): whole frames are masked
    assert ((out == 0) == zeroed[..., None]).all()  # never part of a frame
    for b, n in enumerate(n_frames.tolist()):
        assert not zeroed[b, n:].any()  # padding untouched
        assert torch.equal(out[b, n:], enc[b, n:])
        assert 1 <= int(zeroed[b, :n].sum()) <= min(n, 3 * 6)
    assert torch.equal(out[~zeroed], enc[~zeroed])  # the rest unchanged
    assert (enc != 0).all()  # the input is not modified


def test_time_mask_off_and_reproducible() -> None:
    enc = torch.randn(2, 10, 4)
    n = torch.tensor([10, 7])
    assert time_mask(enc, n, 0, 10, _gen()) is enc
    assert torch.equal(time_mask(enc, n, 2, 4, _gen(3)), time_mask(enc, n, 2, 4, _gen(3)))


def test_drop_tokens_keeps_order_frames_and_padding() -> None:
    big = 10**6
    tokens = torch.tensor([[5, 6, 7, 8, 9, 4], [3, 4, 0, 0, 0, 0]])
    frames = torch.tensor([[0, 1, 1, 2, 5, 7], [2, 3, big, big, big, big]])
    n = torch.tensor([6, 2])
    t2, f2, n2 = drop_tokens(tokens, frames, n, 0.5, _gen(1))
    assert t2.shape == tokens.shape and f2.shape == frames.shape
    for b in range(2):
        pairs = list(zip(tokens[b, : n[b]].tolist(), frames[b, : n[b]].tolist()))
        kept = list(zip(t2[b, : n2[b]].tolist(), f2[b, : n2[b]].tolist()))
        it = iter(pairs)
        assert all(p in it for p in kept)  # a subsequence: order and each token's frame kept
        assert (t2[b, n2[b]:] == 0).all() and (f2[b, n2[b]:] == big).all()
    assert int(n2.sum()) < int(n.sum())
    # p = 0: untouched; p near 1 on a long row: nearly all deleted
    assert drop_tokens(tokens, frames, n, 0.0, _gen())[0] is tokens
    many = torch.arange(1, 201)[None]
    assert int(drop_tokens(many, many, torch.tensor([200]), 0.9, _gen())[2]) < 60


def test_dropout_is_training_only() -> None:
    torch.manual_seed(0)
    model = IqJoint(IqdConfig(enc_dim=16, vocab_size=10, enc_dropout=0.5, dropout=0.5))
    enc, tokens = torch.randn(2, 12, 16), torch.randint(1, 10, (2, 5))
    frames, n_tok = torch.tensor([[0, 2, 4, 6, 8]] * 2), torch.tensor([5, 3])
    model.eval()
    a, b = model(enc, tokens, frames, n_tok), model(enc, tokens, frames, n_tok)
    assert torch.equal(a, b)
    model.train()
    assert not torch.equal(model(enc, tokens, frames, n_tok), a)


def test_endpoint_bce_reads_the_last_loss_frame() -> None:
    logits = torch.zeros(2, 5)
    logits[0, 2], logits[1, 4] = 10.0, -10.0
    directed = torch.tensor([1.0, 0.0])
    assert float(endpoint_bce(logits, directed, torch.tensor([3, 5]))) < 1e-3
    assert float(endpoint_bce(logits, directed, torch.tensor([2, 4]))) == pytest.approx(float(torch.log(torch.tensor(2.0))))


def test_train_config_round_trip_and_checks() -> None:
    from iqd.cli import override
    from iqd.train import TrainConfig

    cfg = override(TrainConfig(), ["token_dropout=0.1", "model.enc_dropout=0.3", "lr_schedule=cosine"])
    assert cfg.token_dropout == 0.1 and cfg.model.enc_dropout == 0.3 and cfg.lr_schedule == "cosine"
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    for bad in (["nonsense=1"], ["model.nonsense=1"], ["token_dropout"], ["lr_schedule=linear"], ["ema_decay=1.0"]):
        with pytest.raises(ValueError):
            override(TrainConfig(), bad)
    assert dataclasses.replace(TrainConfig(), ema_decay=0.99).ema_decay == 0.99
