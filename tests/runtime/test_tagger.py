"""The numpy/onnxruntime tagger against its torch twin (tests/tagging fixtures)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.tagger import RestartPolicy, StreamingTagger, bio_allowed, bio_viterbi, slot_spans
from tagging.data import encode
from tagging.train import load_checkpoint
from tests.tagging.conftest import toy_examples, toy_export, toy_hybrid  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def twin(toy_hybrid: Path):
    return load_checkpoint(toy_hybrid)


def _torch_tags(twin, words: list[str]) -> tuple[list[str], list[str]]:
    """(uni labels of each word, bi labels of the whole `words`) from the torch model."""
    model, tables, _ = twin
    b = encode(tables, [type(toy_examples(1, 0)[0])(tuple(words), ("O",) * len(words))])
    with torch.no_grad():
        out = model(torch.from_numpy(b.word_ids), torch.from_numpy(b.char_ids), torch.from_numpy(b.lengths))
    return ([tables.slots[i] for i in out["uni_slot"][0].argmax(-1).tolist()],
            [tables.slots[i] for i in out["bi_slot"][0].argmax(-1).tolist()])


def test_restart_after_every_token_gives_the_bidirectional_labels_of_each_prefix(toy_export: Path, twin) -> None:
    tagger = StreamingTagger.from_dir(toy_export, decode="argmax")
    for ex in toy_examples(5, 11):
        stream = tagger.create_stream(RestartPolicy(restart="every"))
        for t in range(1, len(ex.words) + 1):
            tags, intent = stream.update(ex.words[:t])
            assert tags == _torch_tags(twin, list(ex.words[:t]))[1]
        assert stream.stats.n_restarts == len(ex.words) and stream.stats.n_uni_steps == len(ex.words)


def test_between_restarts_only_the_newest_word_is_labelled(toy_export: Path, twin) -> None:
    tagger = StreamingTagger.from_dir(toy_export, decode="argmax")
    words = list(toy_examples(1, 12)[0].words)
    stream = tagger.create_stream(RestartPolicy(restart="never", final_restart=True))
    for t in range(1, len(words) + 1):
        tags, _ = stream.update(words[:t])
        assert tags == _torch_tags(twin, words[:t])[0]  # the unidirectional labels, each fixed when its word came
    assert stream.stats.n_restarts == 0
    tags, intent = stream.update(words, final=True)  # the final hypothesis relabels everything
    assert tags == _torch_tags(twin, words)[1] and stream.stats.n_restarts == 1
    assert stream.update(words, final=True)[0] == tags and stream.stats.n_restarts == 1  # nothing new: no work
    assert tagger.tag(words) == (tags, intent)


def test_a_revised_partial_rolls_back_to_the_first_changed_word(toy_export: Path, twin) -> None:
    tagger = StreamingTagger.from_dir(toy_export, decode="argmax")
    stream = tagger.create_stream(RestartPolicy(restart="never", final_restart=False))
    stream.update(["flights", "from", "boston", "to", "dallas"])
    assert stream.stats.n_uni_steps == 5
    revised = ["flights", "from", "austin", "to", "new", "york"]
    tags, _ = stream.update(revised)
    # re-stepped from the state after "from": austin, to, new, york
    assert stream.stats.n_uni_steps == 9 and stream.stats.n_rollbacks == 1
    assert tags == _torch_tags(twin, revised)[0]
    fresh = tagger.create_stream(RestartPolicy(restart="never", final_restart=False))
    assert fresh.update(revised)[0] == tags
    # a hypothesis that loses words: labels and intent of the words that remain, no new work
    tags3, intent3 = stream.update(revised[:3])
    assert tags3 == tags[:3] and stream.stats.n_uni_steps == 9
    assert intent3 == tagger.create_stream(RestartPolicy(restart="never", final_restart=False)).update(revised[:3])[1]


def test_arm_policy_restarts_only_when_the_arm_fires(toy_export: Path) -> None:
    tagger = StreamingTagger.from_dir(toy_export)
    words = list(toy_examples(1, 13)[0].words)
    never = tagger.create_stream(RestartPolicy(restart="arm", arm_threshold=1.0, final_restart=False))
    always = tagger.create_stream(RestartPolicy(restart="arm", arm_threshold=0.0, final_restart=False))
    for t in range(1, len(words) + 1):
        never.update(words[:t])
        always.update(words[:t])
    assert never.stats.n_restarts == 0 and always.stats.n_restarts == len(words)


def test_int8_export_runs_and_mostly_agrees(toy_export: Path) -> None:
    fp32, int8 = StreamingTagger.from_dir(toy_export), StreamingTagger.from_dir(toy_export, precision="int8")
    same = total = 0
    for ex in toy_examples(20, 14):
        a, b = fp32.tag(ex.words)[0], int8.tag(ex.words)[0]
        same += sum(x == y for x, y in zip(a, b))
        total += len(a)
    assert same / total > 0.9


SLOTS = ["O", "B-a", "I-a", "B-b", "I-b"]


def _valid_bio(tags: list[str]) -> bool:
    return all(not t.startswith("I-") or (k and tags[k - 1][2:] == t[2:] and tags[k - 1] != "O")
               for k, t in enumerate(tags))


@pytest.mark.parametrize("probs, want", [
    ([[.1, .6, .1, .1, .1], [.1, .1, .6, .1, .1]], ["B-a", "I-a"]),  # argmax already valid: kept
    ([[.1, .4, .5, 0, 0], [.05, .05, .9, 0, 0]], ["B-a", "I-a"]),  # I-a cannot start: .4 x .9 beats .1 x .05
    ([[0, .6, 0, .3, .1], [.4, 0, .1, 0, .5]], ["B-a", "O"]),  # I-b after B-a is out: .6 x .4 > .3 x .5 > .6 x .1
    ([[.9, .1, 0, 0, 0], [.3, 0, .7, 0, 0]], ["O", "O"]),  # O x O = .27 beats B-a x I-a = .07
])
def test_bio_viterbi_picks_the_best_valid_sequence(probs: list[list[float]], want: list[str]) -> None:
    logits = np.log(np.array(probs) + 1e-12)
    assert [SLOTS[i] for i in bio_viterbi(logits, bio_allowed(SLOTS))] == want


def test_bio_decoding_keeps_streams_valid_and_valid_argmax_labels_unchanged(toy_export: Path) -> None:
    rng = np.random.default_rng(0)
    plain, bio = StreamingTagger.from_dir(toy_export, decode="argmax"), StreamingTagger.from_dir(toy_export, decode="bio")
    vocab = sorted({w for ex in toy_examples(50, 3) for w in ex.words})
    n_invalid = 0
    for _ in range(40):  # shuffled words: the model's own labels are sometimes invalid BIO
        words = list(rng.choice(vocab, size=int(rng.integers(2, 9))))
        for policy in (RestartPolicy(restart="never", final_restart=False), RestartPolicy(restart="every")):
            a, b = plain.create_stream(policy), bio.create_stream(policy)
            for t in range(1, len(words) + 1):
                ta, tb = a.update(words[:t])[0], b.update(words[:t])[0]
                assert _valid_bio(tb)
                n_invalid += not _valid_bio(ta)
        final_a, final_b = plain.tag(words)[0], bio.tag(words)[0]
        if _valid_bio(final_a):
            assert final_b == final_a
    assert n_invalid > 0  # the constraint was exercised
    with pytest.raises(ValueError, match="decode"):
        StreamingTagger.from_dir(toy_export, decode="crf")


def test_decoding_comes_from_the_export_and_older_exports_keep_argmax(toy_export: Path, tmp_path: Path) -> None:
    import json
    import shutil

    assert StreamingTagger.from_dir(toy_export).decode == "bio"
    old = tmp_path / "old"
    shutil.copytree(toy_export, old)
    m = json.loads((old / "tagger.json").read_text())
    del m["decode"]
    (old / "tagger.json").write_text(json.dumps(m))
    assert StreamingTagger.from_dir(old).decode == "argmax"


def test_bad_input_is_a_clear_error(toy_export: Path, tmp_path: Path) -> None:
    stream = StreamingTagger.from_dir(toy_export).create_stream()
    with pytest.raises(ValueError, match="without spaces"):
        stream.update(["new york"])
    assert stream.update([]) == ([], None)
    with pytest.raises(FileNotFoundError, match="heed export tagger"):
        StreamingTagger.from_dir(tmp_path)
    with pytest.raises(ValueError, match="restart policy"):
        RestartPolicy(restart="sometimes")


def test_slot_spans_with_values_and_times() -> None:
    words = ["wake", "me", "at", "seven", "thirty", "in", "paris"]
    tags = ["O", "O", "O", "B-time", "I-time", "O", "B-city"]
    assert slot_spans(words, tags) == [
        {"slot": "time", "value": "seven thirty", "start_word": 3, "end_word": 5},
        {"slot": "city", "value": "paris", "start_word": 6, "end_word": 7}]
    starts = [0.1 * i for i in range(7)]
    ends = [0.1 * i + 0.08 for i in range(7)]
    timed = slot_spans(words, tags, starts, ends)
    assert timed[0]["start"] == pytest.approx(0.3) and timed[0]["end"] == pytest.approx(0.48)
    with pytest.raises(ValueError):
        slot_spans(words, tags[:-1])


def test_runtime_tagger_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, runtime.tagger; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0
