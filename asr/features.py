"""Log-mel filterbank features for training: Kaldi fbank via torchaudio.

The runtime computes the same features in numpy (`runtime.features.fbank`); the config type is
the runtime's, so a model's saved `FbankConfig.to_dict()` means the same thing on both sides.
`tests/asr/test_features.py` asserts that the two twins agree.
"""
from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi

from runtime.features import INT16_SCALE, FbankConfig

__all__ = ["FbankConfig", "INT16_SCALE", "fbank"]


def fbank(waveform: torch.Tensor, cfg: FbankConfig = FbankConfig()) -> torch.Tensor:
    """Kaldi log-mel filterbank of one utterance.

    Samples are scaled by INT16_SCALE (32768) first, as Kaldi and sherpa-onnx do, since Kaldi's
    floors and dither are in int16 units; the numpy twin scales identically. Computed in float64
    like the twin (see runtime/features.py for why), returned in the input's float dtype.
    cfg.dither, if set, is applied here (training augmentation); the runtime never dithers.

    Args:
        waveform: (n_samples,) float in [-1, 1] at cfg.sample_rate.
    Returns:
        (n_frames, n_mels), n_frames = cfg.n_frames(n_samples).
    """
    if waveform.dim() != 1 or not waveform.is_floating_point():
        raise ValueError(f"expected float waveform of shape (n_samples,), got {waveform.dtype} {tuple(waveform.shape)}")
    if cfg.n_frames(waveform.numel()) == 0:
        # torchaudio asserts on a signal shorter than one frame; snip_edges gives zero frames.
        return waveform.new_zeros((0, cfg.n_mels))
    feats = kaldi.fbank(
        (waveform.double() * INT16_SCALE).unsqueeze(0),  # (1, n_samples)
        sample_frequency=cfg.sample_rate,
        num_mel_bins=cfg.n_mels,
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        dither=cfg.dither,
        preemphasis_coefficient=cfg.preemphasis,
        window_type=cfg.window,
        remove_dc_offset=cfg.remove_dc_offset,
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        snip_edges=cfg.snip_edges,
        round_to_power_of_two=cfg.round_to_power_of_two,
        use_energy=False,
    )
    return feats.to(waveform.dtype)  # (n_frames, n_mels)
