from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from asr.data import FeatureCache
from asr.backend import TorchTransducer, decode_utterances
from asr.export import load_checkpoint
from asr.tokenizer import Tokenizer
from asr.train import PRESETS, lr_at, train
from tests.conftest import cer

ROOT = Path(__file__).resolve().parents[2]


def _tiny(corpus: Path, out: Path, **changes):
    return dataclasses.replace(PRESETS["tiny"], corpus=str(corpus), out=str(out), vocab_size=40, **changes)


def test_tiny_model_overfits_four_utterances_and_decodes_their_text(overfit_asr: Path) -> None:
    model, meta = load_checkpoint(overfit_asr / "last.pt")
    tok = Tokenizer(overfit_asr / "tokens.model")
    dev = FeatureCache(overfit_asr / "cache", "dev")
    items = [dev[i] for i in range(len(dev))]
    hyps = decode_utterances(TorchTransducer(model, tok.pieces()), [x for x, _ in items])
    decoded = [tok.decode(h) for h in hyps]
    # a bound, not the exact texts: the overfit model's last characters depend on the float rounding
    assert cer([text for _, text in items], decoded) <= 0.1, decoded
    rows = list(csv.DictReader(open(overfit_asr / "log.csv")))
    assert rows and float(rows[-1]["dev_wer"]) <= 0.25 and meta["epoch"] == 150


def test_resume_continues_where_it_stopped(four_utts: Path, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    train(_tiny(four_utts, out, max_epochs=3), progress=False)
    first = torch.load(out / "last.pt", weights_only=False)
    train(_tiny(four_utts, out, max_epochs=5), resume=True, progress=False)
    second = torch.load(out / "last.pt", weights_only=False)
    assert (first["epoch"], second["epoch"]) == (3, 5)
    assert second["step"] == first["step"] * 5 // 3
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [3, 5]


def test_ddp_with_two_gloo_processes(four_utts: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    heed = shutil.which("heed", path=str(Path(sys.executable).parent))
    assert heed, "the heed console script is installed next to the interpreter"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", heed, "train", "asr",
         "--config", "tiny", "--corpus", str(four_utts), "--out", str(out), "--max-epochs", "4", "--no-progress",
         "--set", "vocab_size=40", "--set", "max_frames=200"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = torch.load(out / "last.pt", weights_only=False)
    # one utterance per batch (max_frames=200), four batches an epoch shared by two ranks: 2 steps an epoch
    assert ckpt["epoch"] == 4 and ckpt["step"] == 8
    assert "world_size 2" in r.stdout


def test_learning_rate_warms_up_decays_and_cools_down_to_zero_at_the_budget() -> None:
    cfg = dataclasses.replace(PRESETS["tiny"], peak_lr=1e-3, warmup_steps=100, max_minutes=60.0, cooldown_minutes=20.0)
    assert lr_at(50, cfg) == 0.5e-3  # warm-up
    assert lr_at(100, cfg) == 1e-3
    assert abs(lr_at(400, cfg) - 0.5e-3) < 1e-12  # 1/sqrt decay
    assert lr_at(400, cfg, minutes=40.0) == lr_at(400, cfg)  # cool-down starts at max - cooldown
    assert abs(lr_at(400, cfg, minutes=50.0) - 0.25e-3) < 1e-12
    assert lr_at(400, cfg, minutes=60.0) == 0.0
    no_cooldown = dataclasses.replace(cfg, cooldown_minutes=0.0)
    assert lr_at(400, no_cooldown, minutes=59.9) == lr_at(400, no_cooldown)
