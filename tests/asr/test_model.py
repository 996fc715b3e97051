from __future__ import annotations

import dataclasses

import pytest
import torch

from asr.model import SUBSAMPLING_PAD, ConformerConfig, Transducer, encoder_frames
from asr.train import PRESETS

TINY = PRESETS["tiny"].model


def _model(cfg: ConformerConfig = TINY, seed: int = 0) -> Transducer:
    torch.manual_seed(seed)
    m = Transducer(cfg).eval()
    with torch.no_grad():  # untrained biases are zero; randomise them so the test can see every path
        for p in m.parameters():
            if p.dim() == 1:
                p.normal_(std=0.3)
    return m


def test_encoder_frames_matches_the_subsampling() -> None:
    m = _model()
    for t in (7, 8, 10, 35, 36, 100, 101):
        y = m.encoder.subsampling(torch.zeros(1, t, 80))
        assert y.shape[1] == encoder_frames(t) == int(encoder_frames(torch.tensor([t]))[0])
    assert encoder_frames(6) == 0


def test_default_chunk_is_320_ms_with_30_ms_lookahead() -> None:
    cfg = ConformerConfig()
    assert cfg.chunk_input_frames * 10 == 320
    assert SUBSAMPLING_PAD * 10 <= 40 and cfg.step_input_frames == 35


def test_loss_shapes_and_gradients() -> None:
    m = _model().train()
    feats, lens = torch.randn(3, 120, 80), torch.tensor([120, 100, 64])
    ys, y_lens = torch.randint(1, TINY.vocab_size, (3, 5)), torch.tensor([5, 3, 1])
    rnnt, ctc = m(feats, lens, ys, y_lens)
    assert rnnt.dim() == 0 and torch.isfinite(rnnt) and torch.isfinite(ctc) and rnnt > 0
    (rnnt + ctc).backward()
    assert all(p.grad is not None for n, p in m.named_parameters()), "every parameter gets a gradient"


@pytest.mark.parametrize("left_chunks,layer_out_norm,floor", [(0, True, None), (2, True, None), (2, False, 4.0)])
def test_streaming_step_equals_full_utterance_under_the_chunk_mask(left_chunks: int, layer_out_norm: bool, floor) -> None:
    cfg = dataclasses.replace(TINY, left_chunks=left_chunks, layer_out_norm=layer_out_norm, log_mel_floor=floor)
    m = _model(cfg)
    n_chunks = 7
    t = n_chunks * cfg.chunk_input_frames + SUBSAMPLING_PAD
    x = torch.randn(2, t, 80)
    with torch.no_grad():
        full, lens = m.encoder(x, torch.tensor([t, t]))
        state, outs = m.encoder.init_state(2), []
        for k in range(n_chunks):
            s = k * cfg.chunk_input_frames
            y, state = m.encoder.step(x[:, s : s + cfg.step_input_frames], state)
            outs.append(y)
    stream = torch.cat(outs, dim=1)
    assert stream.shape == full.shape == (2, n_chunks * cfg.chunk_frames, cfg.d_model)
    assert torch.allclose(stream, full, atol=1e-5), float((stream - full).abs().max())
    assert int(state.processed_frames[0]) == n_chunks * cfg.chunk_input_frames  # fbank frames, as in ONNX


def test_log_mel_floor_raises_digital_silence_before_normalisation() -> None:
    m = _model(dataclasses.replace(TINY, log_mel_floor=4.0))
    x = torch.full((1, 10, 80), -15.9)
    assert torch.equal(m.encoder.normalize(x), m.encoder.normalize(torch.full_like(x, 4.0)))
    assert not torch.equal(_model().encoder.normalize(x), _model().encoder.normalize(torch.full_like(x, 4.0)))


def test_pre_norm_stack_has_one_final_norm_and_old_checkpoints_still_load() -> None:
    pre = _model(dataclasses.replace(TINY, layer_out_norm=False))
    assert isinstance(pre.encoder.final_norm, torch.nn.LayerNorm)
    assert all(isinstance(layer.out_norm, torch.nn.Identity) for layer in pre.encoder.layers)
    old = {k: v for k, v in TINY.to_dict().items() if k not in ("layer_out_norm", "log_mel_floor")}
    assert ConformerConfig.from_dict(old) == TINY  # a checkpoint written before these fields existed


def test_padding_does_not_change_an_utterance() -> None:
    m = _model()
    x = torch.randn(1, 90, 80)
    with torch.no_grad():
        alone, _ = m.encoder(x, torch.tensor([90]))
        padded, lens = m.encoder(torch.cat([x, torch.randn(1, 40, 80)], dim=1), torch.tensor([90]))
    n = int(lens[0])
    assert torch.allclose(alone[0, :n], padded[0, :n], atol=1e-5)


def test_attention_never_sees_a_later_chunk() -> None:
    m = _model()
    x = torch.randn(1, 100, 80)
    cut = 2 * TINY.chunk_input_frames + SUBSAMPLING_PAD  # frames feeding the first two chunks
    y = x.clone()
    y[:, cut:] = torch.randn(1, 100 - cut, 80)
    with torch.no_grad():
        a, _ = m.encoder(x, torch.tensor([100]))
        b, _ = m.encoder(y, torch.tensor([100]))
    first = 2 * TINY.chunk_frames
    assert torch.allclose(a[0, :first], b[0, :first], atol=1e-5)
    assert not torch.allclose(a[0, first:], b[0, first:], atol=1e-3)


def test_config_round_trips_through_a_dict() -> None:
    assert ConformerConfig.from_dict(ConformerConfig().to_dict()) == ConformerConfig()
    with pytest.raises(ValueError):
        ConformerConfig(d_model=100, n_heads=3)


def test_small_preset_stays_small_and_base_under_10m() -> None:
    assert Transducer(PRESETS["small"].model).n_params() < 5_000_000
    assert Transducer(PRESETS["base"].model).n_params() < 10_000_000
