"""IQD fixtures: the overfit tiny ASR's four recordings relabelled as two directed and two
undirected utterances with speech times, a cache of that ASR's outputs, and detectors trained on it."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def iqd_corpus(four_utts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from runtime.manifest import read_manifest, write_manifest

    root = tmp_path_factory.mktemp("iqd-corpus")
    (root / "wav").symlink_to(four_utts / "wav")
    utts = [dataclasses.replace(u, directed=i < 2, speech_start=0.05, speech_end=round(u.duration - 0.05, 3))
            for i, u in enumerate(read_manifest(four_utts / "train.jsonl"))]
    for split in ("train", "dev", "test"):
        write_manifest(root / f"{split}.jsonl", utts)
    return root


@pytest.fixture(scope="session")
def iqd_runs(iqd_corpus: Path, overfit_asr: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """e2e, independent and cascade trained for a few epochs on a shared cache; their experiment folders."""
    from iqd.train import TrainConfig, train

    root = tmp_path_factory.mktemp("iqd-runs")
    runs = {}
    for kind in ("e2e", "independent", "cascade"):
        cfg = TrainConfig(kind=kind, corpus=str(iqd_corpus), out=str(root / kind), asr=str(overfit_asr / "last.pt"),
                          cache=str(root / "cache"), max_epochs=3, max_minutes=2.0)
        train(cfg, progress=False)
        runs[kind] = root / kind
    return runs
