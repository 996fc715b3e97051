"""Label-free distillation of the streaming student (asr/distill.py): a tiny run on generated audio
lowers the loss, a resumed run continues exactly, and a resume with other settings is refused."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.distill import (PRESETS, DistillConfig, Sampler, distill_loss, load_pool, load_student, lr_at,
                         teacher_states, train_student)
from asr.student import Student
from asr.whisper import Whisper, WhisperDims


def tiny_teacher() -> Whisper:
    torch.manual_seed(0)
    whisper = Whisper(WhisperDims(n_state=32, n_head=2, n_audio_layer=2, n_text_layer=1, n_vocab=10, n_audio_ctx=100))
    with torch.no_grad():
        whisper.audio_pos.copy_(torch.randn_like(whisper.audio_pos))
    return whisper.eval()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six clips of generated 'speech': gliding harmonic tones in bursts, over a little noise."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        n = int(rng.uniform(0.6, 1.4) * 16000)
        t = np.arange(n) / 16000
        f0 = 120 + 80 * rng.random() + 30 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (np.sin(2 * np.pi * 3 * t) > 0)
        x = 0.3 * x / np.abs(x).max() + 0.003 * rng.standard_normal(n)
        sf.write(folder / f"g{i}.wav", x.astype(np.float32), 16000)
        lines.append(json.dumps({"id": f"g{i}", "text": "", "words": [], "audio": f"g{i}.wav", "duration": n / 16000,
                                 "sample_rate": 16000}))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl"


def tiny_config(manifest: Path, out: Path, **changes) -> DistillConfig:
    return dataclasses.replace(PRESETS["student-tiny"], out=str(out), train=(str(manifest),), train_weights=(1.0,),
                               **changes)


def test_a_tiny_run_lowers_the_loss(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "run")
    teacher = tiny_teacher()
    held_out = Sampler([load_pool(manifest)], cfg).batch(np.random.default_rng(123))  # fresh augmentations
    with torch.no_grad():
        target = teacher_states(teacher, held_out, layers=True)
        before = float(distill_loss(Student.from_whisper(teacher, cfg.model)(held_out, layers=True), target, cfg))
    path = train_student(cfg, teacher=teacher, progress=False)
    with torch.no_grad():
        after = float(distill_loss(load_student(path)(held_out, layers=True), target, cfg))
    assert path.name == "last.pt"  # no dev set in this run: no best.pt
    half = load_student(path.parent / "student.fp16.pt")
    for (name, a), b in zip(load_student(path).state_dict().items(), half.state_dict().values()):
        assert (a - b).abs().max() <= 1e-3 * max(1.0, float(a.abs().max())), name
    assert after < 0.7 * before, (before, after)


def test_teacher_states_are_whispers_encoder(manifest: Path) -> None:
    teacher = tiny_teacher()
    mel = Sampler([load_pool(manifest)], tiny_config(manifest, Path("unused"))).batch(np.random.default_rng(1))
    from asr.student import normalise

    with torch.no_grad():
        ours = teacher_states(teacher, mel)
        theirs = torch.stack([teacher.encode(normalise(m, m.max())[None])[0] for m in mel])
    assert (ours - theirs).abs().max() < 1e-5


def test_resume_continues_exactly_and_refuses_other_settings(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "straight", max_steps=6)
    straight = load_student(train_student(cfg, teacher=tiny_teacher(), progress=False))

    halves = dataclasses.replace(cfg, out=str(tmp_path / "halves"))
    train_student(halves, teacher=tiny_teacher(), progress=False, stop_at_step=3)
    assert torch.load(tmp_path / "halves" / "last.pt", weights_only=False)["step"] == 3
    with pytest.raises(ValueError, match="--resume"):
        train_student(halves, teacher=tiny_teacher(), progress=False)  # would silently start over
    with pytest.raises(ValueError, match="lr, model"):
        train_student(dataclasses.replace(halves, lr=5e-4, model=dataclasses.replace(halves.model, chunk_frames=2)),
                      resume=True, teacher=tiny_teacher(), progress=False)
    resumed = load_student(train_student(dataclasses.replace(halves, num_threads=1), resume=True,
                                         teacher=tiny_teacher(), progress=False))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_learning_rate_warms_up_then_decays() -> None:
    cfg = DistillConfig(lr=1e-4, warmup_steps=10, max_steps=110, final_lr_fraction=0.1)
    assert lr_at(5, cfg) == pytest.approx(5e-5)
    assert lr_at(10, cfg) == pytest.approx(1e-4)
    assert lr_at(60, cfg) == pytest.approx(5.5e-5)
    assert lr_at(110, cfg) == pytest.approx(1e-5)


def test_config_is_strict() -> None:
    with pytest.raises(ValueError, match="unknown"):
        DistillConfig.from_dict({"lr": 1e-4, "learning_rate": 1})
    with pytest.raises(ValueError, match="loss"):
        DistillConfig(loss="l1")
    cfg = DistillConfig.from_dict(json.loads(json.dumps(PRESETS["student"].to_dict())))
    assert cfg == PRESETS["student"]


def test_cli_refuses_flags_of_the_transducer_recipe(capsys: pytest.CaptureFixture) -> None:
    from runtime.cli import main

    assert main(["train", "asr", "--config", "student", "--corpus", "data/c14k"]) == 1
    assert "--corpus does not apply" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown setting 'learning_rate'"):
        main(["train", "asr", "--config", "student", "--set", "learning_rate=1"])


def test_log_rows_and_curve(tmp_path: Path) -> None:
    from asr.distill import plot_curves, read_log

    log = tmp_path / "log.csv"
    log.write_text("step,minutes,lr,loss,wer,wer_a,wer_b,rejected\n0,0.00,0,,0.5,0.6,0.4,3\n"
                   "100,3.1,3e-05,0.2,,,,\n250,7.3,2e-05,0.21,0.25,0.3,0.2,0\n")
    rows = read_log(log)
    assert [r["step"] for r in rows] == [0, 250]  # rows without a dev measurement are not points
    assert rows[1]["wer_b"] == 0.2 and "loss" not in rows[0]
    plot_curves({"run": log}, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
