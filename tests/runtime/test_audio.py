from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.audio import AudioError, load_audio, read_audio, resample
from runtime.evaluate import normalize, pooled_wer


def test_load_audio_mixes_stereo_and_resamples(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "s.wav", np.stack([tone, tone], axis=1), 44100, subtype="PCM_16")
    x = load_audio(tmp_path / "s.wav", 16000)
    assert x.dtype == np.float32 and abs(len(x) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 16000 / len(x) - 440) < 2
    assert abs(np.max(np.abs(x[100:-100])) - 0.5) < 0.01


def test_load_audio_refuses_with_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AudioError, match=r"x\.wav: not a readable audio file"):
        load_audio(tmp_path / "x.wav")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_truncated_wav_is_refused_and_a_complete_one_is_not(tmp_path: Path) -> None:
    sf.write(tmp_path / "full.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:5000])
    assert len(load_audio(tmp_path / "full.wav")) == 16000
    with pytest.raises(AudioError, match=r"cut\.wav: truncated"):
        load_audio(tmp_path / "cut.wav")


def test_resample_keeps_length_ratio() -> None:
    assert len(resample(np.zeros(8000, np.float32), 8000, 16000)) == 16000


def test_normalize_and_pooled_wer() -> None:
    assert normalize("Wake me up, at SEVEN!  ") == "wake me up at seven"
    assert normalize("don't") == "don't"
    assert pooled_wer([("a b c d", "a x c d"), ("e f", "e f")]) == pytest.approx(1 / 6)
    assert pooled_wer([("a b", "a b c")]) == pytest.approx(0.5)
    assert pooled_wer([("", "")]) is None


def _combos() -> list[tuple[str, str]]:
    return [(fmt, sub) for fmt in sorted(sf.available_formats()) for sub in sorted(sf.available_subtypes(fmt))]


NOT_SEEKABLE = [("WAV", "GSM610"), ("AIFF", "GSM610"), ("W64", "GSM610"), ("WAV", "G721_32"), ("AU", "G721_32"),
                ("AU", "G723_24"), ("AU", "G723_40"), ("WAV", "NMS_ADPCM_16"), ("WAV", "NMS_ADPCM_24"),
                ("WAV", "NMS_ADPCM_32"), ("XI", "DPCM_8"), ("XI", "DPCM_16")]


def test_every_format_libsndfile_writes_is_read_or_refused_by_name(tmp_path: Path) -> None:
    """The 148 format and encoding pairs of libsndfile: each reads as audio or gives an AudioError
    naming the file; the codecs that cannot seek (12 of them crashed the batch, issue 20) read."""
    x = (0.3 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    read, refused = [], []
    for fmt, sub in _combos():
        path = tmp_path / f"{fmt}-{sub}.{fmt.lower()}"
        try:
            sf.write(path, x, 8000, format=fmt, subtype=sub)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
            continue  # libsndfile cannot write this pair
        try:
            y = load_audio(path, 16000)
            native, _ = read_audio(path)
        except AudioError as e:
            assert str(path) in str(e)
            refused.append((fmt, sub))
            continue
        assert y.dtype == np.float32 and np.isfinite(y).all() and len(y) > 0
        assert abs(len(native) - len(x)) <= 400, (fmt, sub, len(native))  # codecs pad to their frames (XI: no rate)
        read.append((fmt, sub))
    assert len(read) + len(refused) >= 140
    assert set(NOT_SEEKABLE) <= set(read)
    assert {f for f, _ in refused} <= {"RAW", "AIFF"}, refused  # headerless audio; AIFF's DWVW libsndfile cannot read back


def test_non_seekable_codecs_read_without_a_frame_count(tmp_path: Path) -> None:
    from runtime.audio import audio_info, stream_audio

    x = (0.3 * np.sin(np.arange(24000) / 10)).astype(np.float32)
    sf.write(tmp_path / "g.wav", x, 8000, subtype="GSM610")
    info = audio_info(tmp_path / "g.wav")
    assert info.subtype == "GSM610" and info.frames is None and info.sample_rate == 8000
    n = audio_info(tmp_path / "g.wav", count_frames=True).frames
    assert 24000 <= n <= 24000 + 320  # padded to GSM's blocks of 320 samples
    whole, rate = read_audio(tmp_path / "g.wav")
    part, _ = read_audio(tmp_path / "g.wav", start=5000, stop=9000)  # read up to the start, not sought
    assert rate == 8000 and whole.shape == (n, 1) and np.array_equal(part, whole[5000:9000])
    blocks = list(stream_audio(tmp_path / "g.wav", 16000, block_s=0.25))
    assert len(blocks) > 10 and np.array_equal(np.concatenate(blocks), load_audio(tmp_path / "g.wav", 16000))


def test_streamed_blocks_are_the_whole_file(tmp_path: Path) -> None:
    """Any block size gives the same samples, resampled or not (soxr streams exactly)."""
    from runtime.audio import stream_audio

    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.normal(size=(44100 * 3, 2))).astype(np.float32)
    sf.write(tmp_path / "s.flac", stereo, 44100)
    whole = load_audio(tmp_path / "s.flac", 16000)
    for block_s in (0.01, 0.37, 1.0, 100.0):
        assert np.array_equal(np.concatenate(list(stream_audio(tmp_path / "s.flac", 16000, block_s))), whole)
    sf.write(tmp_path / "m.wav", stereo[:, 0], 16000, subtype="FLOAT")
    assert np.array_equal(np.concatenate(list(stream_audio(tmp_path / "m.wav", 16000, 0.3))), stereo[:, 0])


def test_reading_a_long_file_keeps_memory_flat(tmp_path: Path) -> None:
    """Ten minutes of 16-bit audio (19 MB on disk, 38 MB as float32): streamed in blocks, the
    reader's allocations stay near one block (the whole-file read held it all, issue 20)."""
    import tracemalloc

    from runtime.audio import stream_audio

    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
        for _ in range(60):
            f.write((0.1 * np.sin(np.arange(160000) / 9)).astype(np.float32))
    tracemalloc.start()
    n = sum(len(b) for b in stream_audio(path, 16000, block_s=10.0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 600 * 16000
    assert peak < 8_000_000, f"{peak:,} bytes at the peak"


def test_headerless_audio_is_refused_with_a_reason(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.raw", np.zeros(1600, np.float32), 16000, format="RAW", subtype="PCM_16")
    with pytest.raises(AudioError, match=r"x\.raw: .*headerless"):
        load_audio(tmp_path / "x.raw")
