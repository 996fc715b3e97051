"""Fixtures shared across the test tree."""
from __future__ import annotations

import os
from pathlib import Path

# One thread for every library's reductions, in this process and the commands the tests start:
# a sum split over threads rounds differently, and a model trained here (the overfit ASR below)
# must not depend on how many cores the machine has. Set before anything imports torch.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import pytest  # noqa: E402

TINY_CORPUS_SIZE = 60


def cer(refs: list[str], hyps: list[str]) -> float:
    """Pooled character error rate. Tests of trained fixtures bound it instead of asserting exact
    transcripts: an overfit tiny model's text still depends on the machine's float rounding."""
    import jiwer

    return float(jiwer.cer(refs, hyps))


def scramble_largest_weight(path: Path, seed: int = 0) -> str:
    """Corrupt an ONNX graph in place: the values of its largest initializer (a weight, int8 or
    float) permuted. The graph still loads and runs; it no longer computes the model. Returns the
    initializer's name."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.random.default_rng(seed).permutation(w.ravel()).reshape(w.shape), init.name))
    onnx.save(model, str(path))
    return init.name


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """torch on one intra-op thread whatever OMP_NUM_THREADS said when torch was imported."""
    try:
        import torch
    except ImportError:  # a runtime-only install: no torch to pin
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-utterance corpus built once per test session by the real builder (all engines)."""
    from corpus.build import BuildConfig, build_corpus

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(BuildConfig(out=out, n_utterances=TINY_CORPUS_SIZE, seed=7), progress=False)
    return out


FOUR_SENTENCES = ["wake me up at seven", "play some jazz", "what is the weather", "call my mother"]


@pytest.fixture(scope="session")
def four_utts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short sentences spoken by one espeak-ng voice: train.jsonl and dev.jsonl (the same four)."""
    import soundfile as sf

    from runtime.manifest import Utterance, write_manifest
    from corpus.tts import synthesize

    root = tmp_path_factory.mktemp("four")
    (root / "wav").mkdir()
    utts = []
    for i, text in enumerate(FOUR_SENTENCES):
        audio = synthesize("espeak-ng/en-us+m3", text)
        sf.write(root / "wav" / f"u{i}.wav", audio, 16000)
        utts.append(Utterance(id=f"u{i}", text=text, words=text.split(), audio=f"wav/u{i}.wav",
                              duration=round(len(audio) / 16000, 3), sample_rate=16000, voice="espeak-ng/en-us+m3",
                              source="test", directed=True))
    write_manifest(root / "train.jsonl", utts)
    write_manifest(root / "dev.jsonl", utts)
    return root


@pytest.fixture(scope="session")
def overfit_asr(four_utts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny transducer trained until it knows the four utterances by heart; returns its experiment folder."""
    import dataclasses

    from asr.train import PRESETS, train

    out = tmp_path_factory.mktemp("overfit") / "exp"
    # Bounded by epochs, not by the clock of a busy machine; one thread and a fixed seed.
    # HEED_FIXTURE_SEED=n trains it from another seed: the tests' bounds must hold for any seed,
    # a far larger change than another machine's rounding.
    seed = int(os.environ.get("HEED_FIXTURE_SEED", "0"))
    cfg = dataclasses.replace(PRESETS["tiny"], corpus=str(four_utts), out=str(out), vocab_size=40, max_epochs=150,
                              checkpoint_minutes=60, max_minutes=60.0, num_threads=1, seed=seed)
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(overfit_asr: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The overfit model exported (fp32 and int8, parity-checked) and assembled into a bundle."""
    from asr.export import export_asr, load_checkpoint
    from asr.export_cli import write_bundle
    from asr.tokenizer import Tokenizer

    root = tmp_path_factory.mktemp("bundle")
    model, _ = load_checkpoint(overfit_asr / "last.pt")
    export_asr(model, Tokenizer(overfit_asr / "tokens.model"), root / "asr-export")
    write_bundle(root / "asr-export", root / "bundle", ["int8", "fp32"], beam=4)
    return root / "bundle"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """With HEED_STRICT_SKIPS=1 (CI sets it) a skip fails: CI installs every engine and package,
    so a skip there means an install step is missing, not that an asset is optional."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("HEED_STRICT_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under HEED_STRICT_SKIPS=1: {reason}"


def load_script(name: str):
    """scripts/NAME.py as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


STUDENT_META = {"schema_version": 1, "chunk_frames": 16, "n_audio_ctx": 1500, "mel_max_init": -1.0, "n_mels": 80,
                "n_audio_layer": 4, "n_text_layer": 4, "n_state": 8, "files": {"int8": "student.int8.onnx"}}


def student_folder(path: Path, n_state: int = 8) -> Path:
    """A `heed export student` folder whose student.json is STUDENT_META (n_state wide) and whose
    graph is not one: give StudentEncoder a stand-in session (`PositionStudent`)."""
    import json

    path.mkdir(parents=True, exist_ok=True)
    (path / "student.json").write_text(json.dumps({**STUDENT_META, "n_state": n_state}))
    (path / "student.int8.onnx").write_bytes(b"not a graph")
    return path


class PositionStudent:
    """A student graph stand-in whose state i of a segment is the vector filled with i."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, names, feeds):
        import numpy as np

        self.calls += 1
        n = feeds["mel"].shape[2] // 2
        off = int(feeds["offset"][0])
        cross = [np.zeros((1, 6, 64, n) if i % 2 == 0 else (1, 6, n, 64), np.float32) for i in range(8)]
        states = np.repeat(np.arange(off, off + n, dtype=np.float32)[None, :, None], 8, axis=2)
        empty = np.zeros((4, 1, 0, 8), np.float32)
        return [*cross, states, feeds["mel_max"], feeds["mel_cache"], feeds["conv_cache"], empty, empty,
                feeds["offset"] + n]
