"""The tagger inside the pipeline: every word of partials and finals gets a tag, results get slots and intent."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.manifest import read_manifest
from runtime.audio import load_audio
from runtime.pipeline import BundleError, Pipeline
from tests.tagging.conftest import toy_examples, toy_export, toy_hybrid  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def tagged_bundle(tiny_bundle: Path, toy_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from asr.export_cli import write_bundle

    out = tmp_path_factory.mktemp("tagged") / "bundle"
    write_bundle(tiny_bundle.parent / "asr-export", out, ["int8", "fp32"], beam=4, tagger=toy_export)
    return out


def test_words_get_tags_and_results_get_slots_and_intent(tagged_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tagged_bundle)
    assert json.loads((tagged_bundle / "bundle.json").read_text())["tagger"]["dir"] == "tagger"
    u = read_manifest(four_utts / "dev.jsonl")[0]
    x = load_audio(four_utts / u.audio)
    s = pipe.create_stream()
    events = []
    for i in range(0, len(x), 1600):
        s.accept_waveform(x[i : i + 1600], 16000)
        events += list(s.events())
    s.input_finished()
    events += list(s.events())
    result = s.result()
    assert result["words"], "the tiny ASR hears words"
    for ev in events + [result]:
        assert all(w["tag"] in pipe.tagger.slots for w in ev["words"])
        assert "slots" in ev and "intent" in ev
        assert ev["intent"] is None or ev["intent"]["label"] in pipe.tagger.intents
        for span in ev["slots"]:
            assert {"slot", "value", "start", "end"} <= set(span) and span["start"] <= span["end"]
    words = [w["word"] for w in result["words"]]
    tags, intent = pipe.tagger.tag(words)  # one segment: the final restart gives the offline labels
    assert [w["tag"] for w in result["words"]] == tags
    assert result["intent"]["label"] == intent["label"]


def test_transcribe_json_carries_tags(tagged_bundle: Path, four_utts: Path) -> None:
    wav = four_utts / read_manifest(four_utts / "dev.jsonl")[1].audio
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "transcribe", "--bundle", str(tagged_bundle), "--json",
                        str(wav)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["words"] and all("tag" in w for w in d["words"]) and "slots" in d and "intent" in d


def test_a_bundle_whose_tagger_is_missing_says_so(tagged_bundle: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "b"
    shutil.copytree(tagged_bundle, broken)
    (broken / "tagger" / "tagger.json").unlink()
    with pytest.raises(BundleError, match="tagger"):
        Pipeline.from_bundle(broken)


def test_eval_scores_slots_and_intents_of_the_recognised_text() -> None:
    from runtime.evaluate import UttResult, understanding

    def utt(ref, ref_tags, hyp, hyp_tags, ref_intent="call", hyp_intent="call"):
        return UttResult("u", ref, hyp, 1.0, 0.01, ref_tags=ref_tags, hyp_tags=hyp_tags,
                         ref_intent=ref_intent, hyp_intent=hyp_intent)

    results = [
        # the slot's words recognised, one word earlier than in the reference: found
        utt("please call john", ["O", "O", "B-contact"], "call john", ["O", "B-contact"]),
        # misrecognised slot value: a miss and a false alarm; wrong intent
        utt("call mary now", ["O", "B-contact", "O"], "call marry now", ["O", "B-contact", "O"], hyp_intent="timer"),
        # no tagger output for this one (None): not scored
        UttResult("v", "call bob", "call bob", 1.0, 0.01, ref_tags=["O", "B-contact"], hyp_tags=None),
    ]
    u = understanding(results)
    assert u["n_utts"] == 2 and u["n_ref_slots"] == 2
    assert u["slot_precision"] == 0.5 and u["slot_recall"] == 0.5 and u["slot_f1"] == 0.5
    assert u["intent_accuracy"] == 0.5
    assert understanding(results[2:]) is None
