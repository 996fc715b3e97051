"""What ends the pipeline's segments on real people (issue 25 item 4: the endpointer).

Every final event says what closed its segment (`segment.ended_by`, docs/interfaces.md): the VAD's
end of speech (silero-vad, trained on real speech), the ASR's endpoint rules (`bundle.json`
`endpoint`: trailing silence after the streaming transducer's last token, nothing decoded, the
length limit) or the end of the input. This runs the default pipeline (both passes, one thread)
over a manifest's clips (each followed by `--pad-s` of silence), counts the three, and gives the finals' WER (spoken form) with the
bundle's rules and, for comparison, with the transducer's trailing-silence rule switched off
(`--compare-off`): when the rule never fires, the transducer's tokens decide no endpoint.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_endpoints.py --manifest data/real/dev.jsonl \\
        --compare-off --out docs/endpoints_bench
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from runtime.audio import load_audio
from runtime.evaluate import pooled_wer
from runtime.manifest import audio_path, read_manifest
from runtime.pipeline import Pipeline


def run(pipe: Pipeline, clips: list[tuple[str, str, np.ndarray]], pad_s: float) -> dict:
    ends: collections.Counter = collections.Counter()
    pairs = []
    for _, ref, x in clips:
        x = np.concatenate([x, np.zeros(round(pad_s * 16000), np.float32)])  # the person stops talking
        s = pipe.create_stream()
        for i in range(0, len(x), 1600):
            s.accept_waveform(x[i : i + 1600], 16000)
        s.input_finished()
        finals = [e for e in s.events() if e.get("final")]
        ends.update(e["segment"]["ended_by"] for e in finals if e.get("segment") and e["words"])
        pairs.append((ref, s.result()["text"]))
    return {"ended_by": dict(ends), "finals_wer": pooled_wer(pairs), "clips": len(clips),
            "segments_with_words": sum(ends.values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default="data/real/dev.jsonl", help="clips with reference texts")
    p.add_argument("--bundle", default="models/default")
    p.add_argument("--pad-s", type=float, default=2.0, help="silence after each clip (s)")
    p.add_argument("--compare-off", action="store_true", help="also without the transducer's trailing-silence rule")
    p.add_argument("--out", default="docs/endpoints_bench", help="writes OUT.json and OUT.md")
    a = p.parse_args(argv)
    manifest = Path(a.manifest)
    if not manifest.is_file():
        print(f"{manifest}: no such manifest (heed corpus import realspeech --out data/real)", file=sys.stderr)
        return 1
    clips = [(u.id, u.text, load_audio(audio_path(manifest, u))) for u in read_manifest(manifest)]
    pipe = Pipeline.from_bundle(a.bundle, threads=1)
    rows = {"bundle's endpoint rules": run(pipe, clips, a.pad_s)}
    if a.compare_off:
        pipe.endpoint = dataclasses.replace(pipe.endpoint, trailing_silence_ms=float("inf"))
        rows["without the trailing-silence rule"] = run(pipe, clips, a.pad_s)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": 1, "manifest": str(manifest),
              "command": "scripts/bench_endpoints.py " + " ".join(sys.argv[1:] if argv is None else argv), "rows": rows}
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    md = [f"{len(clips)} clips of {manifest}, each followed by {a.pad_s:g} s of silence; `{result['command']}`; "
          f"{result['machine']}, one thread.", "",
          "| endpointer | segments with words | ended by the VAD's end of speech | by the ASR's endpoint rules | "
          "by the end of input | finals WER |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        e = r["ended_by"]
        md.append(f"| {name} | {r['segments_with_words']} | {e.get('speech_end', 0)} | {e.get('endpoint', 0)} | "
                  f"{e.get('input_end', 0)} | {100 * r['finals_wer']:.1f}% |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
