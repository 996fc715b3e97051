"""Many streams, reuse and awkward audio: what an embedding application does to a Pipeline."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from runtime.manifest import read_manifest
from runtime.audio import load_audio
from runtime.pipeline import Pipeline


def _clips(four_utts: Path) -> list[np.ndarray]:
    return [load_audio(four_utts / u.audio) for u in read_manifest(four_utts / "dev.jsonl")]


def _decode(pipe: Pipeline, x: np.ndarray, piece: int = 1600, stream=None) -> dict:
    s = stream or pipe.create_stream()
    for i in range(0, len(x), piece):
        s.accept_waveform(x[i : i + piece], 16000)
    s.input_finished()
    return s.result()


def test_streams_in_threads_match_one_at_a_time(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    clips = _clips(four_utts) * 2
    alone = [_decode(pipe, x) for x in clips]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda x: _decode(pipe, x), clips))
    # Words and times are identical; a confidence may differ in its third decimal (seen once under
    # load: int8 kernels on worker threads), so confidences are compared to 0.002.
    strip = lambda r: [(w["word"], w["start"], w["end"]) for w in r["words"]]  # noqa: E731
    assert [strip(r) for r in together] == [strip(r) for r in alone]
    assert [r["text"] for r in together] == [r["text"] for r in alone]
    for r, q in zip(together, alone):
        assert all(abs(w["confidence"] - v["confidence"]) <= 0.002 for w, v in zip(r["words"], q["words"]))


def test_a_reset_stream_is_as_good_as_new(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    a, b = _clips(four_utts)[:2]
    s = pipe.create_stream()
    half = _decode(pipe, a[: len(a) // 2], stream=s)
    assert half["final"]
    s.reset()
    assert s.result()["text"] == "" and not s.result()["final"]
    assert _decode(pipe, b, stream=s) == _decode(pipe, b)
    s.reset()  # reset also works after a resampled stream
    x44 = np.interp(np.arange(0, len(a), 16000 / 44100), np.arange(len(a)), a).astype(np.float32)
    s.accept_waveform(x44, 44100)
    s.input_finished()
    s.reset()
    assert _decode(pipe, a, stream=s) == _decode(pipe, a)


def test_one_sample_at_a_time_equals_whole_pieces(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    x = _clips(four_utts)[1][:12000]
    assert _decode(pipe, x, piece=1) == _decode(pipe, x, piece=len(x))


def test_silence_clipping_and_dc_offset_give_results_not_errors(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    # The tiny model has heard four sentences and nothing else, so it may well hear words in
    # silence; what is checked here is that the runtime copes, not what the model believes.
    x = _clips(four_utts)[0]
    for audio in (np.zeros(16000 * 3, np.float32), np.clip(x * 20, -1, 1), np.clip(x + 0.3, -1, 1)):
        r = _decode(pipe, audio)
        assert r["final"] and r["text"] == " ".join(w["word"] for w in r["words"])
        assert all(0 <= w["start"] <= w["end"] <= len(audio) / 16000 + 0.1 for w in r["words"])


def test_endpoints_fall_at_the_same_chunk_whatever_the_piece_size(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    a, b = _clips(four_utts)[:2]
    gap = np.zeros(int(1.6 * 16000), np.float32)  # past the 800 ms trailing-silence rule
    x = np.concatenate([a, gap, b, gap, a])
    results = []
    for piece in (len(x), 1600, 777):
        s = pipe.create_stream()
        finals = []
        for i in range(0, len(x), piece):
            s.accept_waveform(x[i : i + piece], 16000)
            finals += [e for e in s.events() if e["final"]]
        s.input_finished()
        finals += [e for e in s.events() if e["final"]]
        results.append((s.result(), [(e["t"], e["text"]) for e in finals]))
    assert len(results[0][1]) >= 2, "the silences close segments"
    assert all(r == results[0] for r in results)
