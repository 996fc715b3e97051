"""`heed mic` for real: a PulseAudio daemon with a null sink stands in for the sound card; a
recording is played into the sink with paplay while `heed mic` listens on the sink's monitor."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.manifest import read_manifest
from runtime.audio import load_audio
from runtime.pipeline import Pipeline


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory):
    """Environment for clients of a private PulseAudio daemon whose default source is a null sink's monitor."""
    if not (shutil.which("pulseaudio") and shutil.which("paplay") and shutil.which("pactl")):
        pytest.skip("PulseAudio is not installed (scripts/setup installs pulseaudio and pulseaudio-utils)")
    run_dir = tmp_path_factory.mktemp("pulse")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir), "HOME": str(run_dir)}
    daemon = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--load=module-native-protocol-unix",
         "--load=module-null-sink sink_name=heed_sink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        daemon.kill()
        pytest.fail("the PulseAudio daemon did not come up")
    subprocess.run(["pactl", "set-default-source", "heed_sink.monitor"], env=env, check=True)
    subprocess.run(["pactl", "set-default-sink", "heed_sink"], env=env, check=True)
    yield env
    daemon.terminate()
    daemon.wait(timeout=10)


def _mic(env, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runtime.cli", "mic", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_mic_hears_what_is_played_into_the_sound_server(pulse, tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    """The recording reaches heed through PortAudio intact, and the live transcript is exactly what
    the file path makes of the same captured audio. (Not the words of the sentence: the tiny test
    model has memorised four clips at one alignment to its chunks, and a live stream starts anywhere.)"""
    import numpy as np
    import soundfile as sf

    wav = four_utts / read_manifest(four_utts / "dev.jsonl")[1].audio
    saved = tmp_path / "heard.wav"
    p = _mic(pulse, "--bundle", str(tiny_bundle), "--seconds", "5", "--json", "--save", str(saved))
    assert "listening on" in p.stderr.readline()
    time.sleep(0.5)  # the sound server connects the capture lazily; play into a source already heard
    subprocess.run(["paplay", "-d", "heed_sink", str(wav)], env=pulse, check=True, timeout=30)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events and all({"t", "final", "text", "words"} <= set(e) for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)

    heard, rate = sf.read(saved, dtype="float32")
    assert abs(len(heard) / rate - 5.0) < 0.2
    # The clip's loudness contour (10 ms frames) must be found in what heed heard. Waveforms are
    # not compared: the sound server resamples 16 kHz to 44.1 kHz on the way, and a null sink
    # only starts its monitor once something plays, so the first frames may be missing.
    env = lambda x: np.sqrt((x[: len(x) // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1))  # noqa: E731
    played, heard16 = env(load_audio(wav)), env(load_audio(saved))
    best = max(
        float(np.corrcoef(played[max(0, -lag) :][: len(heard16) - max(0, lag)],
                          heard16[max(0, lag) :][: len(played) - max(0, -lag)])[0, 1])
        for lag in range(-20, len(heard16) - len(played) + 1)
        if min(len(played) - max(0, -lag), len(heard16) - max(0, lag)) > len(played) // 2
    )
    assert best > 0.9, f"the played clip's loudness contour is not in what heed heard (r = {best:.3f})"

    pipe = Pipeline.from_bundle(tiny_bundle)
    s = pipe.create_stream()
    s.accept_waveform(heard, rate)
    s.input_finished()
    finals = [e["text"] for e in events if e["final"] and e["words"]]
    assert " ".join(finals) == s.result()["text"]


def test_mic_names_a_missing_device(pulse, tiny_bundle: Path) -> None:
    p = _mic(pulse, "--bundle", str(tiny_bundle), "--device", "no-such-card", "--seconds", "1")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "no input device named like 'no-such-card'" in err and "Traceback" not in err


def test_mic_without_any_sound_server_says_so(tiny_bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path), "PULSE_SERVER": "unix:/nonexistent"}
    p = _mic(env, "--bundle", str(tiny_bundle), "--seconds", "1")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "Traceback" not in err
    assert "no audio input device" in err or "cannot record" in err or "delivered no audio" in err, err


def test_mic_stops_cleanly_on_ctrl_c(pulse, tiny_bundle: Path, four_utts: Path) -> None:
    import signal

    p = _mic(pulse, "--bundle", str(tiny_bundle), "--plain")
    assert "listening on" in p.stderr.readline()
    time.sleep(0.5)
    wav = four_utts / read_manifest(four_utts / "dev.jsonl")[0].audio
    subprocess.run(["paplay", "-d", "heed_sink", str(wav)], env=pulse, check=True, timeout=30)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)  # generous: a loaded CI machine, not a slow exit, is what this allows for
    assert p.returncode == 0 and "Traceback" not in err and "heard " in out, (out, err)
