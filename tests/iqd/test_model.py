"""The detectors: masking before speech start, step = forward, toy classes they must separate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.detection_metrics import eer
from iqd.model import (AcousticDetector, IqdConfig, IqEnsemble, IqJoint, TextClassifier, frame_mask, masked_bce,
                       token_history_index)


def test_frame_mask_starts_at_speech_start_and_ends_with_the_utterance() -> None:
    m = frame_mask(torch.tensor([10, 6]), torch.tensor([0.1, 0.0]), 0.04, 8)
    # utterance 0: frames ending after 0.1 s are 2.. (frame 2 ends at 0.12); utterance 1 has 6 frames
    assert m[0].tolist() == [False, False, True, True, True, True, True, True]
    assert m[1].tolist() == [True] * 6 + [False] * 2


def test_loss_ignores_frames_before_speech_start() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 20)
    directed = torch.tensor([1.0, 0.0])
    mask = frame_mask(torch.tensor([20, 20]), torch.tensor([0.4, 0.2]), 0.04, 20)
    base = masked_bce(logits, directed, mask)
    changed = logits.clone()
    changed[0, :10] += 100.0  # frames 0..9 of utterance 0 end at or before 0.4 s
    changed[1, :5] -= 100.0
    assert masked_bce(changed, directed, mask) == pytest.approx(float(base))
    changed[0, 10] += 5.0  # the first frame after speech start counts
    assert float(masked_bce(changed, directed, mask)) != pytest.approx(float(base))


def test_token_history_index_counts_tokens_emitted_so_far() -> None:
    idx = token_history_index(torch.tensor([[1, 1, 3, 99]]), torch.tensor([3]), 5)
    assert idx.tolist() == [[0, 2, 2, 3, 3]]


def test_step_by_step_equals_the_whole_utterance() -> None:
    torch.manual_seed(1)
    model = IqJoint(IqdConfig(enc_dim=16, vocab_size=12, token_dim=8, token_hidden=16, joint_dim=16, frame_hidden=8,
                              enc_dropout=0.5)).eval()  # dropout is training only: the step has none
    t = 25
    enc = torch.randn(1, t, 16)
    tokens, frames = [5, 6, 7, 3, 9], [0, 4, 4, 4, 20]  # three tokens on frame 4
    with torch.no_grad():
        full = torch.sigmoid(model(enc, torch.tensor([tokens]), torch.tensor([frames]), torch.tensor([5])))[0]
        state, steps = model.init_state(1), []
        for f in range(t):
            emitted = [tok for tok, fr in zip(tokens, frames) if fr == f] + [0, 0, 0]
            p, state = model.step(enc[:, f], torch.tensor([emitted[:3]]), state)
            steps.append(float(p))
    assert np.abs(np.array(steps) - full.numpy()).max() < 1e-5


def test_ensemble_is_the_mean_logit_of_its_members_whole_and_step_by_step() -> None:
    torch.manual_seed(2)
    cfgs = [IqdConfig(enc_dim=16, vocab_size=12, token_dim=8, token_hidden=h, joint_dim=16, frame_hidden=f)
            for h, f in ((16, 8), (8, 12))]  # other sizes: the state splits by each member's
    ens = IqEnsemble(cfgs).eval()
    t, tokens, frames = 20, [5, 6, 7, 3], [0, 4, 4, 15]
    enc = torch.randn(1, t, 16)
    args = (enc, torch.tensor([tokens]), torch.tensor([frames]), torch.tensor([4]))
    with torch.no_grad():
        whole = ens(*args)[0]
        members = [m(*args)[0] for m in ens.members]
        assert torch.allclose(whole, (members[0] + members[1]) / 2, atol=1e-6)
        assert not torch.allclose(members[0], members[1], atol=1e-2)  # two different networks
        state, steps = ens.init_state(1), []
        assert state.token_state.shape == (1, 1, 24) and state.frame_state.shape == (1, 1, 20)
        for f in range(t):
            emitted = [tok for tok, fr in zip(tokens, frames) if fr == f] + [0, 0, 0]
            p, state = ens.step(enc[:, f], torch.tensor([emitted[:3]]), state)
            steps.append(float(p))
    assert np.abs(np.array(steps) - torch.sigmoid(whole).numpy()).max() < 1e-5
    with pytest.raises(ValueError, match="at least two"):
        IqEnsemble(cfgs[:1])
    with pytest.raises(ValueError, match="same ASR"):
        IqEnsemble([cfgs[0], IqdConfig(enc_dim=32, vocab_size=12)])


def _toy(n: int, seed: int, by: str) -> list[dict]:
    """Directed and undirected toy utterances told apart only by the encoder frames (by="enc")
    or only by the tokens (by="tokens"); everything before speech start is the same noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        directed = i % 2 == 0
        enc = torch.randn(30, 16, generator=g)
        if by == "enc":
            enc[10:, :4] += 0.8 if directed else -0.8
            tokens = torch.randint(1, 12, (6,), generator=g)
        else:
            tokens = torch.randint(1, 6, (6,), generator=g) + (0 if directed else 6)  # 1-5 vs 6-11
        out.append({"enc": enc, "tokens": tokens, "frames": torch.arange(12, 24, 2), "directed": directed})
    return out


def _fit(model: IqJoint, data: list[dict], epochs: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    enc = torch.stack([d["enc"] for d in data])
    toks = torch.stack([d["tokens"] for d in data])
    frames = torch.stack([d["frames"] for d in data])
    y = torch.tensor([float(d["directed"]) for d in data])
    mask = frame_mask(torch.full((len(data),), 30), torch.full((len(data),), 0.4), 0.04, 30)
    for _ in range(epochs):
        loss = masked_bce(model(enc, toks, frames, torch.full((len(data),), 6)), y, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("by", ["enc", "tokens"])
def test_a_tiny_model_separates_two_toy_classes(by: str) -> None:
    torch.manual_seed(0)
    model = IqJoint(IqdConfig(enc_dim=16, vocab_size=12, token_dim=8, token_hidden=16, joint_dim=16, frame_hidden=8))
    train, test = _toy(64, 0, by), _toy(40, 1, by)
    with torch.no_grad():
        before = torch.sigmoid(model(torch.stack([d["enc"] for d in test]), torch.stack([d["tokens"] for d in test]),
                                     torch.stack([d["frames"] for d in test]), torch.full((40,), 6)))[:, -1]
    _fit(model, train, 60)
    with torch.no_grad():
        p = torch.sigmoid(model(torch.stack([d["enc"] for d in test]), torch.stack([d["tokens"] for d in test]),
                                torch.stack([d["frames"] for d in test]), torch.full((40,), 6)))
    labels = [d["directed"] for d in test]
    assert eer(p[:, -1].numpy(), labels) <= 0.05 < eer(before.numpy(), labels)
    # before speech start the classes are the same noise and nothing was learned there
    assert eer(p[:, 5].numpy(), labels) > 0.2


def test_independent_detector_frames_line_up_with_the_encoder() -> None:
    from asr.model import encoder_frames

    model = AcousticDetector(IqdConfig(conv_channels=4, acoustic_dim=8, acoustic_hidden=8))
    for t in (7, 35, 101):
        assert model(torch.randn(2, t, 80)).shape == (2, encoder_frames(t))


def test_text_classifier_learns_toy_words() -> None:
    torch.manual_seed(0)
    texts = ["play some jazz", "set an alarm for seven", "turn on the lights"] * 10 + \
            ["i told him yesterday", "we should go there", "did you see that film"] * 10
    y = torch.tensor([1.0] * 30 + [0.0] * 30)
    model = TextClassifier(IqdConfig(kind="cascade", n_hash=1 << 12))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    ids, offsets = model.encode(texts)
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids, offsets), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = model.predict(["play some music please", "we went there yesterday"])
    assert p[0] > 0.5 > p[1]
