"""Fixtures shared across the test tree."""
from __future__ import annotations

from pathlib import Path

import pytest

TINY_CORPUS_SIZE = 60


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-utterance corpus built once per test session by the real builder (all engines)."""
    from corpus.build import BuildConfig, build_corpus

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(BuildConfig(out=out, n_utterances=TINY_CORPUS_SIZE, seed=7), progress=False)
    return out
