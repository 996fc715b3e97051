"""sherpa-onnx (PyPI) loads the shipped bundle's ASR and, given our fbank options, decodes its
examples as our runtime does: the sherpa-onnx contract of docs/asr.md, checked. (With
sherpa-onnx's own fbank defaults the second example reads "list fares for washington d co boston".)

int8 transcripts are reproducible only to the onnxruntime build and the float rounding (docs/asr.md,
"The int8 gap is numerical": 9 of 42 files differ by a letter or a word), so the two may differ by
one word; this machine gives the same text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.asr import AsrStream
from runtime.audio import load_audio
from runtime.evaluate import word_errors
from runtime.features import FbankConfig
from runtime.sherpa import sherpa_feature_options

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"
# The synthetic examples: on the real people's recordings the streaming model does not hear the
# words, its beam is full of near-ties, and float rounding alone can change several of them.
EXAMPLES = [e for e in (json.loads(line) for line in (BUNDLE / "examples" / "examples.jsonl").read_text().splitlines()
                        if line.strip()) if not e.get("licence")]


@pytest.fixture(scope="module")
def sherpa_beam():
    pytest.importorskip("sherpa_onnx", reason="sherpa-onnx is in the dev extra: pip install -e '.[dev]'")
    from runtime.sherpa import SherpaAsr

    return SherpaAsr.from_bundle(BUNDLE, threads=1, beam=4)


def _ours(sherpa, samples, beam: int) -> tuple[str, int]:
    s = AsrStream(sherpa.model, beam=beam)
    s.accept_waveform(samples)
    s.input_finished()
    return s.result()["text"], len(s.chunk_ms)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["audio"] for e in EXAMPLES])
def test_sherpa_onnx_transcribes_the_examples_as_our_runtime(sherpa_beam, example: dict) -> None:
    x = load_audio(BUNDLE / "examples" / example["audio"], sherpa_beam.model.fbank.sample_rate)
    ours, n_chunks = _ours(sherpa_beam, x, beam=4)  # our beam search without the bundle's LM, as sherpa-onnx decodes
    if not json.loads((BUNDLE / "bundle.json").read_text())["asr"].get("lm"):
        # with an LM the pipeline's expected text is the fused search's
        assert word_errors(example["expected"]["text"], ours)[0] <= 1
    assert ours
    whole, pieces = sherpa_beam.decode(x), sherpa_beam.decode(x, piece=1600)
    assert whole.text == pieces.text and word_errors(ours, whole.text)[0] <= 1, (whole.text, ours)
    assert len(whole.chunk_ms) == len(pieces.chunk_ms) == n_chunks  # the tail makes it decode the same chunks
    assert all(ms > 0 for ms in whole.chunk_ms) and whole.compute_s > 0


def test_feature_options_say_what_sherpa_onnx_defaults_differently() -> None:
    opts = sherpa_feature_options(FbankConfig())
    assert opts["snip_edges"] is True and opts["high_freq"] == 0.0 and opts["normalize_samples"] is False
    assert opts["low_freq"] == 20.0 and opts["feature_dim"] == 80 and opts["dither"] == 0.0
    with pytest.raises(ValueError, match="window"):
        sherpa_feature_options(FbankConfig(window="hamming"))
    with pytest.raises(ValueError, match="preemphasis"):
        sherpa_feature_options(FbankConfig(preemphasis=0.0))
