"""`heed mic`: the demo's live view from a microphone.

Audio is captured with sounddevice (PortAudio) at the device's own rate, mixed down to mono and
handed to a stream of the pipeline, which resamples it. Capture runs in PortAudio's thread and
only queues blocks; decoding runs here. Ctrl-C (or --seconds) stops: the last words are flushed
and the final result printed. `--json` prints every event as a JSON line instead of the view.

Ctrl-C only sets a flag that the loop reads between blocks: a KeyboardInterrupt raised at an
arbitrary point could leave the queue's lock held, and PortAudio's thread, blocked on it in the
callback, would then hang the stream's close forever (seen once in CI).
"""
from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from runtime.cli import NO_SECOND_PASS_HELP, STREAM_PARTIALS_HELP, THREADS_HELP, positive_float, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mic", help="the live view from a microphone", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="model bundle folder (default: models/default)")
    p.add_argument("--device", help="input device: index or part of its name (see --list-devices)")
    p.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("--seconds", type=positive_float, help="stop after this much audio (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print each event as a JSON line")
    p.add_argument("--save", metavar="FILE", help="also write what was heard (mono, the device's rate) to this file; "
                   "its format from the extension (.wav, .flac, .ogg, .mp3, ...)")
    p.add_argument("--plain", action="store_true", help="one line per change instead of the live view")
    p.add_argument("--threads", type=positive_int, default=1, help=THREADS_HELP)
    p.add_argument("--no-vad", action="store_true", help="decode all audio: leave out the bundle's voice-activity detector (silence and noise then reach the ASR)")
    p.add_argument("--no-second-pass", action="store_true", help=NO_SECOND_PASS_HELP)
    p.add_argument("--stream-partials", action="store_true", help=STREAM_PARTIALS_HELP)
    p.set_defaults(func=run)


class MicError(RuntimeError):
    """No usable input device, or PortAudio missing."""


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as e:  # the PortAudio library itself is missing
        raise MicError(f"PortAudio is not installed ({e}); on Debian: apt-get install libportaudio2") from None
    return sd


def input_devices() -> list[dict[str, Any]]:
    sd = _sounddevice()
    return [{"index": i, **d} for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def pick_device(spec: str | None) -> dict[str, Any]:
    """The input device named by an index or a part of its name, or the default input device."""
    sd = _sounddevice()
    devices = input_devices()
    if not devices:
        raise MicError("no audio input device found (no microphone, or no sound server running)")
    if spec is None:
        default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
        for d in devices:
            if d["index"] == default:
                return d
        return devices[0]
    if spec.isdigit():
        for d in devices:
            if d["index"] == int(spec):
                return d
        raise MicError(f"no input device with index {spec}; `heed mic --list-devices` lists them")
    matches = [d for d in devices if spec.lower() in d["name"].lower()]
    if not matches:
        raise MicError(f"no input device named like {spec!r}; `heed mic --list-devices` lists them")
    return matches[0]


def check_save_path(path: str) -> tuple[str, str]:
    """(format, subtype) that libsndfile writes a mono recording in, from the file's extension:
    float where the format holds it, else the format's default. MicError for an extension libsndfile
    does not write, or a folder that does not exist, before any audio is captured."""
    import soundfile as sf
    from pathlib import Path

    ext = Path(path).suffix.lstrip(".").upper()
    fmt = {"OGA": "OGG", "AIF": "AIFF"}.get(ext, ext)
    if fmt not in sf.available_formats() or fmt == "RAW":
        writable = ", ".join("." + f.lower() for f in ("WAV", "FLAC", "OGG", "MP3", "AIFF"))
        raise MicError(f"--save {path}: libsndfile writes no {Path(path).suffix or 'extensionless'} files; "
                       f"use one of {writable}")
    if not Path(path).resolve().parent.is_dir():
        raise MicError(f"--save {path}: the folder {Path(path).parent} does not exist")
    return fmt, "FLOAT" if sf.check_format(fmt, "FLOAT") else sf.default_subtype(fmt)


def run(args: argparse.Namespace) -> int:
    from runtime.audio import to_mono_float
    from runtime.demo import View, describe
    from runtime.pipeline import BundleError, Pipeline

    try:
        if args.list_devices:
            devices = input_devices()
            if not devices:
                raise MicError("no audio input device found (no microphone, or no sound server running)")
            for d in devices:
                print(f"{d['index']:3d}  {d['name']}  ({d['max_input_channels']} in, {d['default_samplerate']:.0f} Hz)")
            return 0
        save_format = check_save_path(args.save) if args.save else None
        device = pick_device(args.device)
        pipe = Pipeline.from_bundle(args.bundle, threads=args.threads, vad=not args.no_vad,
                                      second_pass=not args.no_second_pass,
                                      heard_partials=not args.stream_partials)
    except (MicError, BundleError, FileNotFoundError) as e:
        print(f"heed mic: {e}", file=sys.stderr)
        return 1
    sd = _sounddevice()
    rate = int(device["default_samplerate"])
    blocks: queue.Queue[np.ndarray] = queue.Queue()
    stream = pipe.create_stream()
    view = View(f"microphone: {device['name']} at {rate} Hz")
    live = None
    if not (args.json or args.plain) and sys.stdout.isatty():
        from rich.live import Live
        from rich.text import Text

        live = Live(Text(""), refresh_per_second=20)
        live.start()

    def show(events: list[dict[str, Any]]) -> None:
        for ev in events:
            if args.json:
                print(json.dumps(ev), flush=True)
                continue
            if ev["final"]:
                view.finals.append(ev)
                view.partial = {}
            else:
                view.partial = ev
            view.t = ev["t"]
            if live is not None:
                from rich.text import Text

                live.update(Text("\n".join(view.lines()[-12:])))
            else:
                print(f"  {ev['t']:6.2f} s  {'final:  ' if ev['final'] else 'partial:'} {describe(ev)}", flush=True)

    def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread: queue only
        blocks.put(indata.copy())

    n_samples = 0
    status = 0
    saved = None
    interrupted = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, lambda _signum, _frame: interrupted.set())
    try:
        if args.save:
            import soundfile as sf

            saved = sf.SoundFile(args.save, "w", samplerate=rate, channels=1, format=save_format[0], subtype=save_format[1])
        with sd.InputStream(device=device["index"], samplerate=rate, channels=min(2, device["max_input_channels"]),
                            dtype="float32", blocksize=int(rate * 0.1), callback=callback):
            print(f"heed mic: listening on {device['name']} ({rate} Hz); Ctrl-C stops", file=sys.stderr, flush=True)
            last_block = time.monotonic()
            while not interrupted.is_set() and (args.seconds is None or n_samples < args.seconds * rate):
                try:
                    block = blocks.get(timeout=0.1)
                except queue.Empty:
                    if time.monotonic() - last_block > 2.0:
                        raise MicError(f"{device['name']} delivered no audio for 2 s") from None
                    continue
                last_block = time.monotonic()
                mono = to_mono_float(block, device["name"])
                if saved is not None:
                    saved.write(mono)
                stream.accept_waveform(mono, rate)
                n_samples += len(mono)
                show(list(stream.events()))
    except KeyboardInterrupt:
        pass
    except MicError as e:
        print(f"heed mic: {e}", file=sys.stderr)
        status = 1
    except sd.PortAudioError as e:
        print(f"heed mic: cannot record from {device['name']}: {e}", file=sys.stderr)
        status = 1
    except (OSError, RuntimeError) as e:  # --save cannot be written
        print(f"heed mic: {e}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        if saved is not None:
            saved.close()
        if n_samples:
            stream.input_finished()
            show(list(stream.events()))
        if live is not None:
            live.stop()
    if n_samples and not args.json:
        print(f"heard {n_samples / rate:.1f} s: {stream.result()['text']}", flush=True)
    return status
