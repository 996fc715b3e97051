"""The detectors' view of continuous recordings: the ASR streamed with endpointing, and matching."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from iqd.streams import Segment, match, run_asr, segment_track
from tests.conftest import FOUR_SENTENCES, cer


def test_match_takes_the_first_segment_starting_inside_the_speech() -> None:
    segs = [Segment(0, 50, [5], [10]), Segment(50, 120, [6, 7], [60, 70]), Segment(120, 200, [], [])]
    utts = [{"speech_start": 0.3, "speech_end": 1.5, "directed": True},
            {"speech_start": 2.3, "speech_end": 3.5, "directed": False},
            {"speech_start": 6.0, "speech_end": 7.0, "directed": True}]  # nothing decoded there
    m = match(utts, segs, 0.04)
    assert m[0] is segs[0] and m[1] is segs[1] and m[2] is None
    tr = segment_track(np.full(70, 0.5), m[1], utts[1], 0.04)
    assert tr.onset == 10 and abs(tr.speech_start - (2.3 - 2.0)) < 1e-9 and abs(tr.endpoint_s - (71 * 0.04 + 0.8 - 2.0)) < 1e-9
    missed = segment_track(np.zeros(0), None, utts[2], 0.04)
    assert len(missed.p) == 0 and missed.endpoint_s == 7.8 and missed.directed


def test_streamed_asr_is_the_whole_utterance_asr_and_segments_tile_the_recording(overfit_asr: Path,
                                                                                 four_utts: Path) -> None:
    from asr.backend import TorchTransducer
    from asr.features import fbank
    from asr.tokenizer import Tokenizer
    from iqd.replay import SearchConfig, replay_utterance
    from runtime.audio import load_audio

    asr = TorchTransducer.from_checkpoint(overfit_asr / "last.pt")
    stream = SearchConfig().stream(asr)  # greedy
    tok = Tokenizer(overfit_asr / "tokens.model")
    a, b = load_audio(four_utts / "wav" / "u0.wav"), load_audio(four_utts / "wav" / "u1.wav")
    gap = np.random.default_rng(0).normal(0, 1e-4, 24000).astype(np.float32)  # 1.5 s: the endpointer closes u0
    enc, segments = run_asr(stream, fbank(torch.from_numpy(np.concatenate([a, gap, b, gap]))).numpy())
    whole_enc = asr.encode([fbank(torch.from_numpy(a))])[0]
    whole_tokens, whole_frames, _ = replay_utterance(stream, whole_enc)
    n = len(whole_enc) - asr.chunk_frames  # the whole-utterance pass ends early; compare full chunks
    assert np.abs(enc[:n] - whole_enc[:n]).max() < 1e-4
    # streamed and whole-utterance greedy search agree; the text itself only within a bound (rounding)
    assert segments[0].tokens == whole_tokens and cer([FOUR_SENTENCES[0]], [tok.decode(whole_tokens)]) <= 0.1
    assert segments[0].frames == whole_frames
    assert len(segments) >= 2 and segments[0].start == 0 and segments[-1].end == len(enc)
    assert all(s.end == t.start for s, t in zip(segments, segments[1:]))
    assert all(s.start <= f < s.end for s in segments for f in s.frames)


def test_segment_onset_waits_for_the_speech_onset_gate() -> None:
    """A segment whose first spoken token lies in the quiet pause: the decider starts where the gate
    opens on the segment's own fbank frames (fresh gate at the segment start), as in the runtime."""
    from asr.model import SUBSAMPLING as FBANK_PER_FRAME
    from runtime.iqd_policy import DecisionPolicy, frame_energy_db, gate_onset

    n_mels, fs = 80, 0.04
    loud_from = 130  # encoder frame of the recording where the speech (a loud stretch) begins
    fb = np.full((200 * FBANK_PER_FRAME, n_mels), -2.0)
    fb[loud_from * FBANK_PER_FRAME :] = 3.0  # about 22 dB louder
    fb += np.random.default_rng(0).normal(0, 0.05, fb.shape)
    seg = Segment(100, 200, [7, 8, 9], [105, 140, 150])  # token at 105: hallucinated in the pause
    utt = {"speech_start": loud_from * fs, "speech_end": 7.5, "directed": True}
    pol = DecisionPolicy()
    tr = segment_track(np.full(100, 0.5), seg, utt, fs, feats=fb, policy=pol)
    gate = gate_onset(frame_energy_db(fb[100 * FBANK_PER_FRAME :], FBANK_PER_FRAME, 100), pol, fs)
    assert 30 <= gate <= 30 + pol.frames(pol.onset_min_ms, fs * 1000) and tr.onset == gate
    assert segment_track(np.full(100, 0.5), seg, utt, fs).onset == 5  # without fbank: the first token
    off = segment_track(np.full(100, 0.5), seg, utt, fs, feats=fb, policy=DecisionPolicy(onset_min_ms=0.0))
    assert off.onset == 5
    quiet = segment_track(np.full(100, 0.5), seg, utt, fs, feats=np.full_like(fb, -2.0), policy=pol)
    assert quiet.onset == 100  # the gate never opens: nothing to decide until the endpoint forces it


def test_cached_recordings_are_what_the_stream_benchmark_sees(overfit_asr: Path, iqd_corpus: Path,
                                                               tmp_path: Path) -> None:
    """A `SPLIT-streams` cache row gives the same track as scoring the recording's segment directly
    (bench_iqd.py), and training reads it beside the utterances."""
    from asr.backend import TorchTransducer
    from asr.features import fbank
    from iqd.cache import ConcatCache, IqdCache, frame_seconds, open_splits
    from iqd.replay import SearchConfig, cache_stream_split
    from iqd.streams import load_timelines, stream_rows
    from iqd.train import loss_frames
    from runtime.audio import load_audio
    from runtime.iqd_policy import DecisionPolicy

    cache_stream_split(overfit_asr / "last.pt", iqd_corpus, tmp_path, "dev", 2, skip=1, min_s=6.0, max_s=12.0,
                       progress=False)
    rows = IqdCache(tmp_path, "dev-streams")
    assert len(rows) >= 2 and all(u.id.split("/")[1] != "u0" for u in rows.utts)  # the first utterance skipped
    cache_stream_split(overfit_asr / "last.pt", iqd_corpus, tmp_path / "all", "dev", 1, skip=3, min_s=6.0,
                       max_s=12.0, progress=False)  # one utterance left, one class: all four are used
    assert len(IqdCache(tmp_path / "all", "dev-streams")) >= 2
    stream = SearchConfig().stream(TorchTransducer.from_checkpoint(overfit_asr / "last.pt"))
    fs, policy = frame_seconds(), DecisionPolicy()
    expected = []
    for wav, tl in load_timelines(tmp_path / "streams-src", "dev"):
        feats = fbank(torch.from_numpy(load_audio(wav))).numpy()
        enc, segments = run_asr(stream, feats)
        for seg, u in stream_rows(segments, tl["segments"], fs, rows.silent_tokens):
            expected.append(segment_track(np.arange(seg.end - seg.start) / 100, seg, u, fs, rows.silent_tokens,
                                          feats, policy))
            assert np.allclose(enc[seg.start : seg.end], rows.enc(len(expected) - 1), atol=2e-3)
    from iqd.train import tracks_of

    got = tracks_of(rows, [np.arange(u.n_enc) / 100 for u in rows.utts], policy)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g.onset, g.directed) == (e.onset, e.directed)
        assert abs(g.endpoint_s - e.endpoint_s) < 1e-6 and abs(g.speech_start - e.speech_start) < 2e-3
    for u in rows.utts:  # the loss stops 0.3 s after the utterance's speech, before the next one's
        assert loss_frames(u) <= u.n_enc and (loss_frames(u) - 1) * fs <= u.speech_end + 0.3
    for split in ("dev", "train", "train-streams"):  # the recordings stand in for every split
        for ext in ("index.jsonl", "enc.npy", "fbank.npy"):
            (tmp_path / f"{split}.{ext}").symlink_to(tmp_path / f"dev-streams.{ext}")
    joined = open_splits(tmp_path, "dev", True)
    assert isinstance(joined, ConcatCache) and len(joined) == 2 * len(rows)
    assert np.array_equal(joined.enc(len(rows)), rows.enc(0)) and joined.vocab_size == rows.vocab_size
    from iqd.train import TrainConfig, train

    out = train(TrainConfig(kind="e2e", corpus=str(iqd_corpus), out=str(tmp_path / "e2e"), cache=str(tmp_path),
                            streams=True, max_epochs=1), progress=False)
    dev = torch.load(out, weights_only=False)["dev"]
    assert dev["n_directed"] + dev["n_undirected"] == 2 * len(rows)  # policy chosen on dev and dev-streams
