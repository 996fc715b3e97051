"""The detectors' view of continuous recordings: the ASR streamed with endpointing, and matching."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from iqd.streams import Segment, match, run_asr, segment_track


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
    from asr.export import load_checkpoint
    from asr.features import fbank
    from asr.tokenizer import Tokenizer
    from iqd.cache import encode_batch
    from runtime.audio import load_audio

    model, _ = load_checkpoint(overfit_asr / "last.pt")
    tok = Tokenizer(overfit_asr / "tokens.model")
    a, b = load_audio(four_utts / "wav" / "u0.wav"), load_audio(four_utts / "wav" / "u1.wav")
    gap = np.random.default_rng(0).normal(0, 1e-4, 24000).astype(np.float32)  # 1.5 s: the endpointer closes u0
    enc, segments = run_asr(model, fbank(torch.from_numpy(np.concatenate([a, gap, b, gap]))))
    whole_enc, whole_tokens, whole_frames = encode_batch(model, [fbank(torch.from_numpy(a))])[0]
    n = len(whole_enc) - model.cfg.chunk_frames  # the whole-utterance pass ends early; compare full chunks
    assert np.abs(enc[:n] - whole_enc[:n]).max() < 1e-4
    assert tok.decode(segments[0].tokens) == "wake me up at seven" == tok.decode(whole_tokens)
    assert segments[0].frames == whole_frames
    assert len(segments) >= 2 and segments[0].start == 0 and segments[-1].end == len(enc)
    assert all(s.end == t.start for s, t in zip(segments, segments[1:]))
    assert all(s.start <= f < s.end for s in segments for f in s.frames)


def test_segment_onset_waits_for_the_speech_onset_gate() -> None:
    """A segment whose first spoken token lies in the quiet pause: the decider starts where the gate
    opens on the segment's own fbank frames (fresh gate at the segment start), as in the runtime."""
    from runtime.iqd import FBANK_PER_FRAME, DecisionPolicy, frame_energy_db, gate_onset

    n_mels, fs = 80, 0.04
    loud_from = 130  # encoder frame of the recording where the speech (a loud stretch) begins
    fb = np.full((200 * FBANK_PER_FRAME, n_mels), -2.0)
    fb[loud_from * FBANK_PER_FRAME :] = 3.0  # about 22 dB louder
    fb += np.random.default_rng(0).normal(0, 0.05, fb.shape)
    seg = Segment(100, 200, [7, 8, 9], [105, 140, 150])  # token at 105: hallucinated in the pause
    utt = {"speech_start": loud_from * fs, "speech_end": 7.5, "directed": True}
    pol = DecisionPolicy()
    tr = segment_track(np.full(100, 0.5), seg, utt, fs, feats=fb, policy=pol)
    gate = gate_onset(frame_energy_db(fb[100 * FBANK_PER_FRAME :], 100), pol, fs)
    assert 30 <= gate <= 30 + pol.frames(pol.onset_min_ms, fs * 1000) and tr.onset == gate
    assert segment_track(np.full(100, 0.5), seg, utt, fs).onset == 5  # without fbank: the first token
    off = segment_track(np.full(100, 0.5), seg, utt, fs, feats=fb, policy=DecisionPolicy(onset_min_ms=0.0))
    assert off.onset == 5
    quiet = segment_track(np.full(100, 0.5), seg, utt, fs, feats=np.full_like(fb, -2.0), policy=pol)
    assert quiet.onset == 100  # the gate never opens: nothing to decide until the endpoint forces it
