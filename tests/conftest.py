"""Fixtures shared across the test tree."""
from __future__ import annotations

import os
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
