#!/usr/bin/env python
"""The measurements behind the second pass's design choices (docs/second_pass.md, "Why it is built so").

    OMP_NUM_THREADS=1 .venv/bin/python scripts/second_pass_experiments.py --real data/real --corpus data/c14k \\
        --out docs/second_pass_experiments

Sections (WER of the second pass alone, spoken form; real = the real dev set, synth = the first
--n-synth utterances of the synthetic corpus's dev split):
- fill: what fills the encoder positions after the segment (30 s of zeros encoded; the segment
  + 0/1/2 s of zeros then the cached encoding of a constant input; that fill cut short);
- int8: fp32 or int8 for the encoder and the decoder;
- no_speech: Whisper's no-speech probability on speech and on silence, hum and noise;
- rescore: the two-pass combination's weights (Whisper's log-probability + w * the character LM's),
  chosen on the dev sets.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def load_sets(real: Path, corpus: Path, n_synth: int) -> dict[str, list[tuple[np.ndarray, str]]]:
    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio

    out = {}
    for name, manifest, n in (("real", real / "dev.jsonl", None), ("synth", corpus / "dev.jsonl", n_synth)):
        utts = [u for u in read_manifest(manifest) if u.duration <= 25][:n]
        out[name] = [(load_audio(audio_path(manifest, u)), u.text) for u in utts]
    return out


def wer_of(transcribe, sets) -> dict[str, float]:
    import jiwer

    from runtime.whisper import to_spoken

    return {name: round(float(jiwer.wer([t for _, t in items], [to_spoken(transcribe(a)) for a, _ in items])), 4)
            for name, items in sets.items()}


def fill_section(second, sets) -> list[dict]:
    from runtime.whisper import DecodeOptions, SecondPass

    rows = []
    full = SecondPass(second.folder, sessions=(second.encoder, second.decoder))

    def thirty(a):  # Whisper's own way: the segment padded with zeros to 30 s, all 1,500 positions encoded
        full.options = DecodeOptions(pad_s=30 - len(a) / 16000)
        return full.transcribe(a).text

    rows.append({"fill": "30 s of zeros encoded (Whisper)", **wer_of(thirty, sets)})
    for pad in (2.0, 1.0, 0.0):
        s = SecondPass(second.folder, sessions=(second.encoder, second.decoder), options=DecodeOptions(pad_s=pad))
        rows.append({"fill": f"{pad:g} s of zeros, then the cached constant-input fill", **wer_of(lambda a: s.transcribe(a).text, sets)})
    for value in (-0.25, -1.25):  # the shipped fill is a constant log-mel of -0.75 (whisper.json fill_value)
        s = SecondPass(second.folder, sessions=(second.encoder, second.decoder))
        s.meta = {**s.meta, "fill_value": value}
        rows.append({"fill": f"2 s of zeros, then a fill of constant {value:g} instead of {second.meta['fill_value']:g}",
                     **wer_of(lambda a: s.transcribe(a).text, sets)})
    for total in (1000, 500):
        s = SecondPass(second.folder, sessions=(second.encoder, second.decoder))
        s._fill = [f[..., :total] if i % 2 == 0 else f[:, :, :total] for i, f in enumerate(second.fill())]
        rows.append({"fill": f"2 s of zeros, fill cut at {total} positions ({total / 50:g} s)", **wer_of(lambda a: s.transcribe(a).text, sets)})
    return rows


def int8_section(second, sets) -> list[dict]:
    from asr.export_whisper import _export_fp32
    from asr.whisper import load_whisper
    from runtime.bundle import onnx_session
    from runtime.whisper import SecondPass

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _export_fp32(load_whisper(), Path(tmp))
        fp32 = {k: onnx_session(Path(tmp) / f"{k}.onnx") for k in ("encoder", "decoder")}
        int8 = {"encoder": second.encoder, "decoder": second.decoder}
        for enc, dec in (("fp32", "fp32"), ("int8", "fp32"), ("fp32", "int8"), ("int8", "int8")):
            s = SecondPass(second.folder, sessions=((fp32 if enc == "fp32" else int8)["encoder"],
                                                    (fp32 if dec == "fp32" else int8)["decoder"]))
            rows.append({"encoder": enc, "decoder": dec, **wer_of(lambda a: s.transcribe(a).text, sets)})
    return rows


def no_speech_section(second, sets) -> dict:
    rng = np.random.default_rng(0)
    n = 5 * 16000
    noise = {"digital silence": np.zeros(n, np.float32),
             "white noise -60 dBFS": (rng.normal(size=n) * 1e-3).astype(np.float32),
             "white noise -40 dBFS": (rng.normal(size=n) * 1e-2).astype(np.float32),
             "white noise -30 dBFS": (rng.normal(size=n) * 3e-2).astype(np.float32),
             "50 Hz hum -40 dBFS": (0.01 * np.sin(2 * np.pi * 50 * np.arange(n) / 16000)).astype(np.float32)}
    out = {"non_speech": {k: {"text": (r := second.transcribe(x)).text or None, "p": round(r.no_speech_prob, 3)}
                          for k, x in noise.items()}}
    for name, items in sets.items():
        p = np.array([second.transcribe(a).no_speech_prob for a, _ in items])
        out[name] = {"n": len(p), "median": round(float(np.median(p)), 3), "p90": round(float(np.percentile(p, 90)), 3),
                     "max": round(float(p.max()), 3), "above_0.8": int((p > 0.8).sum())}
    return out


def rescore_section(bundle: str, real: Path, corpus: Path, n_synth: int) -> list[dict]:
    """The pipeline's final choice under other weights, from one pass that records every candidate's
    scores (runtime.pipeline.Stream.second_pass_log)."""
    import jiwer

    from runtime.manifest import audio_path, read_manifest
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline
    from runtime.whisper import RescoreConfig

    pipe = Pipeline.from_bundle(bundle, threads=1)
    record = []
    for name, manifest, n in (("real", real / "dev.jsonl", None), ("synth", corpus / "dev.jsonl", n_synth)):
        for u in read_manifest(manifest)[:n]:
            # every candidate scored: a bonus threshold below any score keeps them all
            pipe.rescore = RescoreConfig(n_best=4, lm_weight=1e-9)
            s = pipe.create_stream()
            s.accept_waveform(load_audio(audio_path(manifest, u)), 16000)
            s.input_finished()
            record.append((name, u.text, s.second_pass_log))
    rows = []
    for w in (0.0, 0.3, 0.5, 0.7, 0.8, 1.0, 1.5):
        row: dict = {"lm_weight": w}
        for name in ("real", "synth"):
            refs, hyps = [], []
            for set_name, ref, log in record:
                if set_name != name:
                    continue
                words = []
                for seg in log:
                    if "candidates" in seg:
                        lm = [b / 1e-9 for b in seg["bonus"]]  # the LM's log-probabilities, recorded at weight 1e-9
                        words.append(seg["candidates"][int(np.argmax([s + w * l for s, l in zip(seg["whisper_lp"], lm)]))])
                    elif "chosen" in seg:
                        words.append(seg["chosen"])
                refs.append(ref)
                hyps.append(" ".join(x for x in words if x))
            row[name] = round(float(jiwer.wer(refs, hyps)), 4)
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--real", type=Path, default=Path("data/real"))
    ap.add_argument("--corpus", type=Path, default=Path("data/c14k"))
    ap.add_argument("--n-synth", type=int, default=240)
    ap.add_argument("--sections", default="fill,int8,no_speech,rescore")
    ap.add_argument("--out", default="docs/second_pass_experiments")
    ap.add_argument("--update", action="store_true", help="keep OUT.json's other sections; rerun only --sections")
    args = ap.parse_args()

    from runtime.whisper import SecondPass

    second = SecondPass(Path(args.bundle) / "whisper")
    sections = args.sections.split(",")
    sets = load_sets(args.real, args.corpus, 80) if {"fill", "int8", "no_speech"} & set(sections) else {}
    out_json = Path(args.out).with_suffix(".json")
    result: dict = json.loads(out_json.read_text()) if args.update and out_json.exists() else {}
    command = "scripts/second_pass_experiments.py " + " ".join(sys.argv[1:])
    result["commands"] = {**result.get("commands", {}), **{s: command for s in sections}}
    if sets:
        result["sets"] = {k: len(v) for k, v in sets.items()}
    for name in sections:
        print(f"{name} ...", file=sys.stderr, flush=True)
        if name == "fill":
            result["fill"] = fill_section(second, sets)
        elif name == "int8":
            result["int8"] = int8_section(second, sets)
        elif name == "no_speech":
            result["no_speech"] = no_speech_section(second, sets)
        elif name == "rescore":
            result["rescore"] = rescore_section(args.bundle, args.real, args.corpus, args.n_synth)
    from runtime.bench import write_report

    write_report(Path(args.out), result, to_markdown(result))
    return 0


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def to_markdown(r: dict) -> str:
    lines = ["# Second pass: design measurements", "",
             "Commands: " + "; ".join(f"{k}: `{v}`" for k, v in sorted(r["commands"].items())) + "; one thread. "
             f"Sets: {', '.join(f'{k} {v} utterances' for k, v in r['sets'].items())} (rescore: see its table).", ""]
    if "fill" in r:
        lines += ["## What fills the encoder after the segment", "", "| fill | real | synth |", "|---|---:|---:|"]
        lines += [f"| {x['fill']} | {_pct(x['real'])} | {_pct(x['synth'])} |" for x in r["fill"]]
    if "int8" in r:
        lines += ["", "## Precision per part", "", "| encoder | decoder | real | synth |", "|---|---|---:|---:|"]
        lines += [f"| {x['encoder']} | {x['decoder']} | {_pct(x['real'])} | {_pct(x['synth'])} |" for x in r["int8"]]
    if "no_speech" in r:
        ns = r["no_speech"]
        lines += ["", "## Whisper's no-speech probability", "", "| input | text | p(no speech) |", "|---|---|---:|"]
        lines += [f"| {k} | {v['text'] or '(none)'} | {v['p']} |" for k, v in ns["non_speech"].items()]
        lines += ["", "| speech | utterances | median | p90 | max | above 0.8 |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['n']} | {v['median']} | {v['p90']} | {v['max']} | {v['above_0.8']} |"
                  for k, v in ns.items() if k != "non_speech"]
    if "rescore" in r:
        lines += ["", "## Two-pass combination weight (real dev set; synthetic dev split)", "",
                  "| LM weight | real | synth |", "|---:|---:|---:|"]
        lines += [f"| {x['lm_weight']} | {_pct(x['real'])} | {_pct(x['synth'])} |" for x in r["rescore"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
