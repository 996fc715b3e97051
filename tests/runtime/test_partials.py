"""Partials from the streaming student (runtime/partials.py): the front end streams Whisper's log-mel
power exactly, the commit policy never retracts, the decoder's reuse of its previous hypothesis
gives what a fresh greedy search gives, and a stream of segments restarts its positions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.audio import load_audio
from runtime.partials import LocalAgreement, MelStream, PartialDecoder, PartialsConfig, PartialsError
from runtime.whisper import HOP, N_FFT, SecondPass, hann_window

ROOT = Path(__file__).resolve().parents[2]
WHISPER = ROOT / "models" / "default" / "whisper"
PERSON = ROOT / "models" / "default" / "examples" / "04-person-command.wav"


def _whole_log_mel_power(x: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """torch.stft(center=True)'s framing of a whole clip (reflect padding at both ends), last frame dropped."""
    p = np.pad(np.asarray(x, np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(p, N_FFT)[::HOP][:-1]
    mel = (np.abs(np.fft.rfft(frames * hann_window(), axis=1)) ** 2) @ filters.T.astype(np.float64)
    return np.log10(np.maximum(mel, 1e-10)).T


@pytest.mark.parametrize("block", [1, 160, 999, 5120, 16000])
def test_streamed_mel_equals_the_whole_clips_for_any_block_size(block: int) -> None:
    rng = np.random.default_rng(0)
    filters = np.abs(rng.normal(size=(80, 201)))
    x = rng.normal(scale=0.1, size=16000 + 37)
    whole = _whole_log_mel_power(x, filters)
    mel = MelStream(filters)
    parts = [mel.accept(x[i : i + block]) for i in range(0, len(x), block)]
    streamed = np.concatenate(parts, axis=1)
    # every frame whose window lies inside the clip is out before the end; reflect vs zero padding
    # only changes the frames after that
    n = (len(x) - N_FFT // 2 - 1) // HOP
    assert streamed.shape[1] >= n - 1
    np.testing.assert_allclose(streamed[:, :n], whole[:, :n], atol=1e-4)
    tail = mel.flush()
    assert streamed.shape[1] + tail.shape[1] >= whole.shape[1] - 1


def test_a_clip_shorter_than_half_a_window_still_gives_frames_at_its_end() -> None:
    mel = MelStream(np.ones((80, 201)))
    assert mel.accept(np.full(100, 0.1)).shape[1] == 0
    assert mel.flush().shape[1] >= 1


def test_local_agreement_commits_common_whole_words_and_never_retracts() -> None:
    starts = [True, False, True, True, False, True]  # tokens 1 and 4 continue a word
    la = LocalAgreement(starts, n=2)
    assert la.update([0, 1, 2]) == 0  # one hypothesis: nothing agreed yet
    assert la.update([0, 1, 3]) == 2  # agree on [0, 1]; token 2 vs 3 both start words: [0, 1] is whole
    assert la.update([0, 1, 3, 4]) == 2  # [0, 1, 3] agreed, but 3 continues with 4 in one of them
    assert la.update([0, 1, 3, 4, 5]) == 4
    with pytest.raises(PartialsError):
        la.update([0, 2])  # a hypothesis that drops committed tokens is a caller's bug


def test_local_agreement_commits_only_up_to_the_first_unsure_token() -> None:
    starts = [True] * 6  # every token a word
    sure, unsure = np.log(0.9), np.log(0.3)
    la = LocalAgreement(starts, n=2, min_prob=0.5)
    la.update([0, 1, 2, 3])
    assert la.update([0, 1, 2, 3], [sure, sure, unsure, sure]) == 2  # token 2 agreed but unsure: it and what follows wait
    assert la.update([0, 1, 2, 3], [sure, sure, sure, sure]) == 4
    assert la.update([0, 1, 2, 3, 4]) == 4  # without log-probabilities only the agreement counts


def test_local_agreement_property_committed_only_grows_and_is_a_prefix() -> None:
    rng = np.random.default_rng(1)
    starts = list(rng.random(20) < 0.5)
    for _ in range(200):
        la = LocalAgreement(starts, n=int(rng.integers(1, 4)), min_prob=float(rng.choice([0.0, 0.5])))
        committed: list[int] = []
        for _ in range(15):
            tail = list(rng.integers(0, 20, size=int(rng.integers(0, 4))))
            hyp = committed + (tail if rng.random() < 0.5 else list(rng.integers(0, 3, size=3)))
            k = la.update(hyp, list(np.log(rng.random(len(hyp)))))
            assert la.committed[: len(committed)] == committed
            assert hyp[:k] == la.committed
            committed = list(la.committed)


def test_config_is_strict() -> None:
    with pytest.raises(PartialsError, match="unknown"):
        PartialsConfig.from_dict({"update_every": 2})
    with pytest.raises(PartialsError):
        PartialsConfig(update_chunks=0)
    with pytest.raises(PartialsError):
        PartialsConfig(max_segment_s=40.0)
    with pytest.raises(PartialsError):
        PartialsConfig(first_update_chunks=-1)
    with pytest.raises(PartialsError):
        PartialsConfig(min_prob=1.0)
    with pytest.raises(PartialsError):
        PartialsConfig(chunk_ms=165.0)  # Whisper's frames are 10 ms
    assert PartialsConfig(chunk_ms=160).chunk_ms == 160


@pytest.fixture(scope="module")
def second() -> SecondPass:
    if not (WHISPER / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    return SecondPass.from_dir(WHISPER)


def test_reusing_the_previous_hypothesis_gives_the_fresh_greedy_result(second: SecondPass) -> None:
    x = load_audio(PERSON)
    cross, _ = second.encode(x)
    fresh, _, _ = second.greedy(cross, len(x) / 16000)
    dec = PartialDecoder(second)
    assert dec.update(cross, len(x) / 16000, [], 0).tokens == fresh
    held = dec.update(cross, len(x) / 16000, fresh, 0)
    assert held.tokens == fresh and held.decoder_calls == 1  # the whole hypothesis held: one call
    wrong = fresh[:2] + [fresh[3], fresh[2]] + fresh[4:]
    again = dec.update(cross, len(x) / 16000, wrong, 0)
    assert again.tokens == fresh and 1 < again.decoder_calls < len(fresh) + 1
    # committed tokens are kept even where the decoder would now choose otherwise
    forced = dec.update(cross, len(x) / 16000, wrong, 4)
    assert forced.tokens[:4] == wrong[:4]
    # each token's log-probability in this reading (the commit policy's min_prob). (The kept ones come
    # from one call over all previous tokens; the int8 graph quantizes that call's activations
    # together, so they differ from a token-by-token search's by up to about 0.1.)
    for hyp in (held, again, forced):
        assert len(hyp.logprobs) == len(hyp.tokens) and all(lp <= 0 for lp in hyp.logprobs)
    assert min(forced.logprobs[2:4]) < min(held.logprobs)  # the swapped tokens, forced, are unlikely


def test_nothing_may_continue_the_last_committed_word(second: SecondPass) -> None:
    dec = PartialDecoder(second)
    self_id, space_self = second.vocab.index("self"), second.vocab.index("Ġself")
    comma = second.vocab.index(",")
    after = dec.after_committed
    assert after[self_id] and not after[space_self] and not after[comma] and not after[second.eot]
    assert not second.suppress[self_id]  # elsewhere "self" may continue a word
    assert (after >= second.suppress).all()  # and what is always suppressed stays so


class _FakeStudent:
    """A student graph stand-in that checks what it is given: positions within 1,500 per segment."""

    def __init__(self) -> None:
        self.offsets: list[int] = []

    def run(self, names, feeds):
        n = feeds["mel"].shape[2] // 2
        off = int(feeds["offset"][0])
        assert off + n <= 1500, f"position {off + n} past the student's 1,500"
        self.offsets.append(off)
        cross = [np.zeros((1, 6, 64, n) if i % 2 == 0 else (1, 6, n, 64), np.float32) for i in range(8)]
        empty = np.zeros((4, 1, 0, 384), np.float32)
        return [*cross, np.zeros((1, n, 384), np.float32), feeds["mel_max"], feeds["mel_cache"], feeds["conv_cache"],
                empty, empty, feeds["offset"] + n]


def test_positions_restart_at_every_segment_over_an_hour(second: SecondPass, tmp_path: Path) -> None:
    from runtime.partials import Partials, SegmentResult, StudentEncoder
    from tests.conftest import student_folder

    student_folder(tmp_path, n_state=384)
    fake = _FakeStudent()
    # no decoder updates inside segments (update_chunks beyond a segment): the hour is about positions
    stream = Partials(second, StudentEncoder(tmp_path, session=fake), PartialsConfig(update_chunks=10**6)).stream()
    ends = 0
    block = np.zeros(16000 * 60, np.float32)
    for _ in range(60):
        ends += sum(isinstance(e, SegmentResult) for e in stream.accept_waveform(block))
    assert ends == 3600 // 28  # every 28 s the segment ends and the next starts at position 0
    assert max(fake.offsets) < 1500 and fake.offsets.count(0) >= ends
    assert stream.time_s == pytest.approx(3600.0)
    with pytest.raises(PartialsError, match="320 ms"):  # the student's chunk is fixed by its export
        Partials(second, StudentEncoder(tmp_path, session=fake), PartialsConfig(chunk_ms=160))


def test_a_bundle_with_a_bad_partials_entry_is_refused(tmp_path: Path) -> None:
    import json
    import shutil

    from runtime.pipeline import BundleError, Pipeline

    if not (WHISPER / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    bundle = tmp_path / "b"
    shutil.copytree(ROOT / "models" / "default", bundle)
    manifest = json.loads((bundle / "bundle.json").read_text())
    for bad, match in (({"reader": "conformer"}, "reader"), ({"update_every": 2}, "update_every"),
                       ({"reader": "student"}, "student"), ({"chunk_ms": 165}, "chunk_ms"), ({"min_prob": 1.5}, "min_prob")):
        (bundle / "bundle.json").write_text(json.dumps({**manifest, "partials": bad}))
        with pytest.raises(BundleError, match=match):
            Pipeline.from_bundle(bundle)


def test_whisper_reads_at_the_chunk_and_cadence_the_config_gives(second: SecondPass) -> None:
    from runtime.partials import PartialEvent, Partials

    x = load_audio(PERSON)[:16000]
    for cfg, times in ((PartialsConfig(chunk_ms=160, update_chunks=3), [0.48, 0.96]),
                       (PartialsConfig(update_chunks=1), [0.32, 0.64, 0.96])):
        stream = Partials(second, None, cfg).stream()
        events = [e for i in range(0, len(x), 160) for e in stream.feed_segment(x[i : i + 160])]
        assert [e.time_s for e in events if isinstance(e, PartialEvent)] == times
