"""Loading a model bundle (INTERFACES.md section 2): one loader for every file a bundle holds.

Whatever is wrong with a bundle's files (a missing or truncated `.onnx`, garbage in place of a
graph, `bundle.json` that is not JSON or lacks a key, a truncated `lm.npz`, an empty
`tokens.txt`), loading raises a `BundleError` whose message names the file and the problem; a
command prints it and exits 1 instead of a traceback. Every part of the runtime reads its files
through these functions: `read_json` (its objects name their file when a key is missing),
`read_lines`, `onnx_session`, and `Bundle.part` around any other loader.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

SCHEMA_VERSION = 1
T = TypeVar("T")


class BundleError(ValueError):
    """A bundle folder that is missing, incomplete, corrupt or of another schema."""


class Entries(dict):
    """A JSON object read from `path`: a missing key is a KeyError that names the file."""

    def __init__(self, path: Path, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.path = path

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"{self.path}: no {key!r} entry")


def problem(e: BaseException) -> str:
    """Why a file could not be loaded, in a few words (the exception's own message otherwise)."""
    import zipfile

    msg = str(e)
    if type(e).__module__.startswith("onnxruntime"):
        if "Protobuf parsing failed" in msg:
            return "not a valid ONNX graph (truncated, or not ONNX at all)"
        detail = msg.split(" : ")[-1]
        return "onnxruntime cannot load it: " + (detail.split("failed:", 1)[1].strip() if "failed:" in detail else detail)
    if isinstance(e, (zipfile.BadZipFile, EOFError)):
        return "not a valid .npz archive (truncated, or not one)"
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(e, KeyError):  # an `Entries` key names its file; a bare one is a table's name
        key = e.args[0] if e.args else "?"
        return key if isinstance(key, str) and ": " in key else f"lacks {key!r}"
    if isinstance(e, (ValueError, OSError)) and msg:
        return msg
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def read_json(path: Path) -> Entries:
    """A JSON file whose top level is an object; BundleError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_hook=lambda d: Entries(path, d))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BundleError(f"{path}: not valid JSON ({problem(e)})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_lines(path: Path) -> list[str]:
    """A text file's lines (a symbol table: line k is id k); BundleError when it is missing,
    not UTF-8 or empty."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: {problem(e) if isinstance(e, UnicodeDecodeError) else 'missing or unreadable'}") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise BundleError(f"{path}: empty")
    return lines


def load_npz(path: Path, keys: tuple[str, ...] = ()) -> dict[str, "np.ndarray"]:
    """Every array of an .npz archive; BundleError naming the file when it is missing, truncated,
    not an archive or lacks one of `keys`."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile, zlib, numpy's format errors: all mean a corrupt archive
        raise BundleError(f"{path}: {problem(e)}") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise BundleError(f"{path}: lacks the array{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return arrays


def onnx_session(path: Path, threads: int = 1, arena: bool = True):
    """An onnxruntime CPU session of one graph (one intra-op pool of `threads`, one inter-op thread,
    all graph optimizations); BundleError naming the file when it is missing or not a graph.
    arena=False: memory goes back after each run instead of staying in onnxruntime's arena (for a
    graph whose inputs vary widely in size, such as an encoder of whole segments)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: missing")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = arena
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's errors derive from Exception only
        raise BundleError(f"{path}: {problem(e)}") from None


@dataclass(frozen=True)
class Bundle:
    """A bundle folder and its bundle.json, checked for the entries every bundle needs."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"{path}: no such bundle folder" if not path.exists() else f"{path}: not a folder")
        f = path / "bundle.json"
        if not f.exists():
            raise BundleError(f"{path}: not a model bundle (no bundle.json)")
        manifest = read_json(f)
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise BundleError(f"{f}: schema_version {manifest.get('schema_version')}, this heed reads {SCHEMA_VERSION}")
        asr = manifest.get("asr")
        if not isinstance(asr, dict) or not isinstance(asr.get("files"), dict) or not asr["files"]:
            raise BundleError(f"{f}: no asr.files entry (the ASR graphs of each precision)")
        for prec, files in asr["files"].items():
            missing = [k for k in ("encoder", "decoder", "joiner") if not isinstance((files or {}).get(k), str)]
            if missing:
                raise BundleError(f"{f}: asr.files.{prec} lacks {', '.join(missing)}")
        if not isinstance(asr.get("tokens"), str):
            raise BundleError(f"{f}: no asr.tokens entry (the token table)")
        for key in ("lm",):
            if asr.get(key) and not isinstance(asr[key].get("file"), str):
                raise BundleError(f"{f}: asr.{key} has no file entry")
        for key in ("tagger", "iqd"):
            if manifest.get(key) and not isinstance(manifest[key].get("dir"), str):
                raise BundleError(f"{f}: {key} has no dir entry")
        for key in ("endpoint", "features"):
            if not isinstance(manifest.get(key, {}), dict):
                raise BundleError(f"{f}: {key} must be a JSON object")
        return cls(path, manifest)

    @property
    def json_path(self) -> Path:
        return self.path / "bundle.json"

    def file(self, rel: str) -> Path:
        p = self.path / rel
        if not p.exists():
            raise BundleError(f"{self.path}: bundle.json names {rel}, which is missing")
        return p

    def endpoint(self):
        """bundle.json's endpoint entry as a `runtime.endpoint.EndpointConfig`: known keys, positive milliseconds."""
        from runtime.endpoint import EndpointConfig

        entry = self.manifest.get("endpoint", {})
        known = set(EndpointConfig.__dataclass_fields__)
        for k, v in entry.items():
            if k not in known:
                raise BundleError(f"{self.json_path}: endpoint.{k} is not an endpoint setting ({', '.join(sorted(known))})")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise BundleError(f"{self.json_path}: endpoint.{k} must be a positive number of milliseconds, not {v!r}")
        return EndpointConfig(**entry)

    def check_agrees(self, features: dict[str, Any], chunk_ms: float, encoder: Path) -> None:
        """bundle.json's copies of the feature settings and the chunk size must say what the encoder's
        ONNX metadata says (`features`, `chunk_ms`; the runtime reads the metadata): a bundle.json that
        contradicts its graph is refused, naming both values, rather than silently overruled."""
        from_graph = {f"features.{k}": v for k, v in features.items()} | {"asr.chunk_ms": chunk_ms}
        written = {f"features.{k}": v for k, v in self.manifest.get("features", {}).items()}
        if "chunk_ms" in self.manifest["asr"]:
            written["asr.chunk_ms"] = self.manifest["asr"]["chunk_ms"]
        for key, value in written.items():
            if key in from_graph and value != from_graph[key]:
                raise BundleError(f"{self.json_path}: {key} is {value!r}, but the metadata of {encoder} "
                                  f"says {from_graph[key]!r}")

    def part(self, rel: str, what: str, load: Callable[[Path], T]) -> T:
        """`load` applied to the file or folder `rel` that bundle.json names; whatever goes wrong
        becomes a BundleError naming it and `what` it is."""
        p = self.file(rel)
        try:
            return load(p)
        except BundleError:  # names its file already
            raise
        except Exception as e:  # any other failure of a loader on a corrupt file: named, never a traceback
            msg = problem(e)
            raise BundleError(f"{msg} ({what})" if str(p) in msg else f"{p}: {what}: {msg}") from None
