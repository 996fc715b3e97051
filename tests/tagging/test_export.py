from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tagging.export import BOUNDS, ExportMismatch, check_parity
from tagging.train import load_checkpoint
from tests.conftest import scramble_largest_weight

from .conftest import toy_examples


def test_export_writes_graphs_tables_and_a_manifest(toy_export: Path, toy_hybrid: Path) -> None:
    m = json.loads((toy_export / "tagger.json").read_text())
    assert m["schema_version"] == 1 and m["kind"] == "hybrid"
    for prec in ("fp32", "int8"):
        assert set(m["files"][prec]) == {"token", "uni_step", "bi"}
        for f in m["files"][prec].values():
            assert (toy_export / f).stat().st_size > 0
    _, tables, _ = load_checkpoint(toy_hybrid)
    assert (toy_export / "slots.txt").read_text().split("\n")[:-1] == list(tables.slots)
    assert m["state"] == {"names": ["h", "c"], "shape": [1, 32]} and m["decode"] == "bio"
    assert m["policy"]["restart"] == "arm" and m["policy"]["arm_threshold"] == load_checkpoint(toy_hybrid)[2]["arm"]["threshold"]
    assert max(v for k, v in m["parity"]["fp32"].items() if k != "label_agreement") < 1e-4
    assert m["parity"]["fp32"]["label_agreement"] == 1.0
    int8 = m["parity"]["int8"]
    assert int8["label_agreement"] >= BOUNDS["int8"].min_label_agreement
    assert max(v for k, v in int8.items() if k.endswith("_rel")) <= BOUNDS["int8"].max_logit_rel


def test_parity_check_fails_when_the_graphs_differ_from_torch(toy_export: Path, toy_hybrid: Path) -> None:
    model, tables, _ = load_checkpoint(toy_hybrid)
    with torch.no_grad():
        model.bi_slot.bias += 0.01  # the exported graphs no longer compute this model
    with pytest.raises(ExportMismatch, match="bi_slot by"):
        check_parity(model, tables, toy_examples(4, 9), toy_export)


@pytest.mark.parametrize("part", ["token", "uni_step", "bi"])
def test_int8_parity_check_fails_on_a_corrupted_graph(toy_export: Path, toy_hybrid: Path, tmp_path: Path,
                                                      part: str) -> None:
    """int8 is checked with finite bounds (it used to be recorded, not bounded): a scrambled weight
    in any of its graphs fails the export."""
    import shutil

    model, tables, _ = load_checkpoint(toy_hybrid)
    bad = tmp_path / "bad"
    shutil.copytree(toy_export, bad)
    scramble_largest_weight(bad / f"{part}.int8.onnx")
    with pytest.raises(ExportMismatch, match=r"onnxruntime\.int8 differs.*of its spread") as err:
        check_parity(model, tables, toy_examples(12, 9), bad, ".int8")
    if part != "token":  # a scrambled LSTM changes the labels too, not only the numbers
        assert "labels agree on" in str(err.value)
