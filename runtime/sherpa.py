"""sherpa-onnx's `OnlineRecognizer` on a heed bundle's ASR, set up to decode as `runtime.asr` does.

Our encoder, decoder and joiner follow sherpa-onnx's streaming conformer transducer contract, so
sherpa-onnx loads them as they are. What it cannot read from the graphs is the feature front
end: sherpa-onnx reads no feature option from a transducer's metadata, and its defaults differ
from the Kaldi defaults our models are trained with (`FbankConfig`) in three places, which this
module passes explicitly:

- `normalize_samples=False`: sherpa-onnx then scales [-1, 1] samples by 32768 as we do;
- `snip_edges=True`: sherpa-onnx's default (False) centres frame i on sample 160 i + 80 instead
  of 160 i + 200, with reflected edges, so every frame moves by 120 samples and two frames are
  added;
- `high_freq=0` (Nyquist): sherpa-onnx's default, -400, ends the mel triangles at 7.6 kHz instead
  of 8 kHz, so every bin's band differs.

With these, sherpa-onnx's fbank equals ours to float32 rounding. The options sherpa-onnx does
not expose (window, pre-emphasis, DC removal, frame length and shift, FFT size) are Kaldi's
defaults in both; `sherpa_feature_options` refuses a model whose `FbankConfig` differs there.

Three decoding policies differ by design, not by mistake (docs/asr.md measures them):

- the end of input: sherpa-onnx decodes a chunk only once more than `T` fbank frames are ready
  and drops what is left at `input_finished`; `SherpaAsr.decode` appends the fewest zero samples
  that make it decode the same chunks as `AsrStream.input_finished` (which repeats the last frame
  instead, and searches only the encoder frames that real audio made);
- greedy search: sherpa-onnx emits at most one token per encoder frame, ours up to three, so our
  greedy (not the bundles' default) can differ; modified beam search (one token per frame in
  both) is the same search;
- modified beam search's final choice: sherpa-onnx takes the hypothesis with the highest
  log-probability per token, ours the highest log-probability.

sherpa_onnx is optional: it is imported when a `SherpaAsr` is made, never at module import.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.asr import OnnxTransducer
from runtime.features import FbankConfig

# Kaldi's frame options that kaldi-native-fbank fixes and sherpa-onnx's API does not expose.
_FIXED = {"frame_length_ms": 25.0, "frame_shift_ms": 10.0, "preemphasis": 0.97, "window": "povey",
          "remove_dc_offset": True, "round_to_power_of_two": True}


def sherpa_version() -> str | None:
    """The installed sherpa_onnx's version, or None when it cannot be imported."""
    try:
        import sherpa_onnx
    except ImportError:
        return None
    return getattr(sherpa_onnx, "__version__", "unknown")


def sherpa_feature_options(cfg: FbankConfig) -> dict[str, Any]:
    """`OnlineRecognizer.from_transducer` keyword arguments that give sherpa-onnx our fbank.

    Raises ValueError for a config sherpa-onnx cannot reproduce (see `_FIXED`).
    """
    wrong = {k: getattr(cfg, k) for k, v in _FIXED.items() if getattr(cfg, k) != v}
    if wrong:
        raise ValueError(f"sherpa-onnx fixes these fbank options at Kaldi's defaults {_FIXED}; this model has {wrong}")
    return {"sample_rate": cfg.sample_rate, "feature_dim": cfg.n_mels, "low_freq": cfg.low_freq,
            "high_freq": cfg.high_freq, "dither": 0.0, "snip_edges": cfg.snip_edges, "normalize_samples": False}


@dataclass
class SherpaResult:
    text: str
    chunk_ms: list[float]  # compute of each `decode_stream` call: encoder + search of one chunk
    compute_s: float  # all of it: features (in accept_waveform), chunks, the tail
    tail_samples: int  # zeros appended before input_finished


class SherpaAsr:
    """One sherpa-onnx `OnlineRecognizer` over a bundle's ASR graphs; streams are made per decode."""

    def __init__(self, model: OnnxTransducer, encoder: Path, decoder: Path, joiner: Path, tokens: Path,
                 threads: int = 1, beam: int = 4, **feature_overrides: Any) -> None:
        import sherpa_onnx

        self.model, self.beam = model, beam
        self.method = "modified_beam_search" if beam > 1 else "greedy_search"
        options = {**sherpa_feature_options(model.fbank), **feature_overrides}
        try:
            self.recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
                tokens=str(tokens), encoder=str(encoder), decoder=str(decoder), joiner=str(joiner),
                num_threads=threads, decoding_method=self.method, max_active_paths=max(beam, 1),
                enable_endpoint_detection=False, **options)
        except TypeError as e:  # an old sherpa-onnx whose from_transducer lacks a feature option
            raise RuntimeError(f"sherpa-onnx {sherpa_version()} cannot set the fbank options {sorted(options)}: {e}") from None

    @classmethod
    def from_bundle(cls, path: str | Path, threads: int = 1, beam: int = 4, precision: str = "int8",
                    model: OnnxTransducer | None = None, **feature_overrides: Any) -> "SherpaAsr":
        """The bundle's ASR files; `model` (our own, already loaded) supplies the metadata if given.
        `feature_overrides` replace our feature options (to measure what each one is worth)."""
        from runtime.pipeline import Bundle

        bundle = Bundle.load(path)
        asr = bundle.manifest["asr"]
        files = [bundle.file(asr["files"][precision][k]) for k in ("encoder", "decoder", "joiner")]
        tokens = bundle.file(asr["tokens"])
        if model is None:
            model = OnnxTransducer(*files, tokens, threads=threads)
        return cls(model, *files, tokens, threads=threads, beam=beam, **feature_overrides)

    def tail_samples(self, n_samples: int) -> int:
        """Zeros to append so that sherpa-onnx decodes the chunks `AsrStream.input_finished` decodes.

        Ours: encoder frame t reads fbank frames sub*t .. sub*t + sub - 1 + look, and the frames
        real audio covers are decoded in ceil(n_valid / chunk) steps. sherpa-onnx: step k runs once
        more than shift*k + T frames are ready.
        """
        m, cfg = self.model, self.model.fbank
        look, sub = m.step_frames - m.shift_frames, m.shift_frames // m.chunk_frames
        n_frames = cfg.n_frames(n_samples)
        n_valid = (n_frames - look - sub) // sub + 1 if n_frames >= look + sub else 0
        if n_valid <= 0:
            return 0
        n_steps = -(-n_valid // m.chunk_frames)
        need_frames = m.shift_frames * (n_steps - 1) + m.step_frames + 1
        return max(0, (need_frames - 1) * cfg.frame_shift + cfg.frame_size - n_samples)

    def decode(self, samples: np.ndarray, piece: int | None = None) -> SherpaResult:
        """One utterance: (n,) float samples in [-1, 1] at the model's rate, fed `piece` samples at a
        time (all at once by default), each complete chunk decoded as soon as it is ready."""
        rec, rate = self.recognizer, self.model.fbank.sample_rate
        samples = np.asarray(samples, dtype=np.float32)
        tail = self.tail_samples(len(samples))
        piece = piece or max(len(samples), 1)
        stream, chunk_ms = rec.create_stream(), []
        t_start = time.perf_counter()

        def run_ready() -> None:
            while rec.is_ready(stream):
                t0 = time.perf_counter()
                rec.decode_stream(stream)
                chunk_ms.append(1000 * (time.perf_counter() - t0))

        for i in range(0, len(samples), piece):
            stream.accept_waveform(rate, samples[i : i + piece])
            run_ready()
        if tail:
            stream.accept_waveform(rate, np.zeros(tail, np.float32))
        stream.input_finished()
        run_ready()
        text = rec.get_result(stream)
        text = text if isinstance(text, str) else text.text
        return SherpaResult(" ".join(text.split()), chunk_ms, time.perf_counter() - t_start, tail)
