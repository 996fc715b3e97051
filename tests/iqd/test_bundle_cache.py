"""The IQD cache filled by the bundle's exported transducer (iqd.replay.build_bundle_cache), with the
student's states beside it: two caches whose rows differ only in the encoder output."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from iqd.cache import IqdCache
from iqd.replay import build_bundle_cache
from runtime.manifest import read_manifest
from runtime.partials import StudentEncoder
from tests.conftest import PositionStudent, student_folder

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The bundle's five examples as a labelled test split (speech from 0.3 s to 0.3 s before the end)."""
    out = tmp_path / "corpus"
    out.mkdir()
    lines = []
    for i, u in enumerate(read_manifest(BUNDLE / "examples" / "examples.jsonl")):
        shutil.copy(BUNDLE / "examples" / u.audio, out / Path(u.audio).name)
        lines.append(json.dumps({"id": u.id, "text": u.text, "words": u.words, "split": "test",
                                 "audio": Path(u.audio).name, "duration": u.duration, "sample_rate": 16000,
                                 "directed": i % 2 == 0, "speech_start": 0.3, "speech_end": u.duration - 0.3}))
    (out / "test.jsonl").write_text("\n".join(lines) + "\n")
    return out


def test_the_two_caches_share_every_row_but_the_encoder(corpus: Path, tmp_path: Path) -> None:
    student = StudentEncoder(student_folder(tmp_path / "st"), session=PositionStudent())
    if not (BUNDLE / "whisper" / "mel_filters.npy").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    build_bundle_cache(BUNDLE, corpus, "test", tmp_path / "t", student, tmp_path / "s", progress=False)
    t, s = IqdCache(tmp_path / "t", "test"), IqdCache(tmp_path / "s", "test")
    assert len(t) == len(s) == 5
    assert t.enc_dim == 256 and s.enc_dim == 8
    for i, (a, b) in enumerate(zip(t.utts, s.utts)):
        assert (a.tokens, a.token_frames, a.hyp, a.n_enc, a.directed) == (b.tokens, b.token_frames, b.hyp, b.n_enc, b.directed)
        assert a.n_enc == pytest.approx(a.duration / 0.04, abs=2)
        assert all(0 <= f < a.n_enc for f in a.token_frames)
        # the student's states in order from position 0, two per 40 ms frame
        np.testing.assert_array_equal(s.enc(i)[:5, 0], np.arange(5) * 2 + 0.5)
        np.testing.assert_array_equal(t.fbank(i), s.fbank(i))
    assert "flights" in t.utts[1].hyp or "flight" in t.utts[1].hyp  # the transducer heard the ATIS example
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["enc_dim"] == 8 and meta["student"].endswith("st")
    # the two side by side (a detector reading both), the transducer's first
    from iqd.cache import join_caches

    b = IqdCache(join_caches(tmp_path / "t", tmp_path / "s", tmp_path / "b"), "test")
    assert b.enc_dim == 264 and [u.id for u in b.utts] == [u.id for u in t.utts]
    np.testing.assert_array_equal(b.enc(2), np.concatenate([t.enc(2), s.enc(2)], axis=1))
    assert json.loads((tmp_path / "b" / "meta.json").read_text())["joined"] == [256, 8]
    # a finished split is reused, not refilled
    mtime = (tmp_path / "t" / "test.index.jsonl").stat().st_mtime_ns
    build_bundle_cache(BUNDLE, corpus, "test", tmp_path / "t", progress=False)
    assert (tmp_path / "t" / "test.index.jsonl").stat().st_mtime_ns == mtime
