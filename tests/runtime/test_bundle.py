"""The bundle loader (runtime/bundle.py): every corrupt part of a bundle is a BundleError naming the
file and the problem, from `Pipeline.from_bundle` and from the command line (issue 20: 26-31-line
tracebacks before), and a bounded fuzz of the bundle's files gives nothing else."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.bundle import BundleError
from runtime.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"
FILES = sorted(str(p.relative_to(BUNDLE)) for p in BUNDLE.rglob("*") if p.is_file() and "examples" not in p.parts
               and p.name not in ("MODEL_CARD.md", "LICENSE"))


def variant(root: Path, changes: dict[str, bytes | None]) -> Path:
    """A copy of the default bundle (links to its files) with some files replaced (None: removed)."""
    out = root / "bundle"
    for p in BUNDLE.rglob("*"):
        rel = str(p.relative_to(BUNDLE))
        if p.is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if rel in changes:
                if changes[rel] is not None:
                    (out / rel).write_bytes(changes[rel])
            else:
                (out / rel).symlink_to(p)
    return out


def _half(rel: str) -> bytes:
    data = (BUNDLE / rel).read_bytes()
    return data[: len(data) // 2]


def _json_edit(rel: str, edit: Callable[[dict], None]) -> bytes:
    m = json.loads((BUNDLE / rel).read_text())
    edit(m)
    return json.dumps(m).encode()


def _npz_without(rel: str, key: str) -> bytes:
    import io

    with np.load(BUNDLE / rel) as z:
        arrays = {k: z[k] for k in z.files if k != key}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# (case, file changed, its new content, words the message must hold)
CASES = [
    ("truncated encoder", "asr/encoder.int8.onnx", lambda: _half("asr/encoder.int8.onnx"), "not a valid ONNX graph"),
    ("garbage joiner", "asr/joiner.int8.onnx", lambda: b"this is not a graph" * 50, "not a valid ONNX graph"),
    ("empty decoder", "asr/decoder.int8.onnx", lambda: b"", "decoder.int8.onnx"),
    ("missing decoder", "asr/decoder.int8.onnx", lambda: None, "which is missing"),
    ("decoder in the encoder's place", "asr/encoder.int8.onnx",
     lambda: (BUNDLE / "asr/decoder.int8.onnx").read_bytes(), "metadata has no 'num_encoder_layers'"),
    ("empty tokens.txt", "asr/tokens.txt", lambda: b"", "tokens.txt: empty"),
    ("tokens.txt without ids", "asr/tokens.txt", lambda: b"a\nb\nc\n", "tokens.txt:1: expected a token and its id"),
    ("tokens.txt one short", "asr/tokens.txt",
     lambda: "\n".join((BUNDLE / "asr/tokens.txt").read_text().splitlines()[:-1]).encode(), "the decoder"),
    ("tokens.txt not UTF-8", "asr/tokens.txt", lambda: b"\xff\xfe\x00garbage 0\n", "not UTF-8"),
    ("truncated lm.npz", "asr/lm.npz", lambda: _half("asr/lm.npz"), "not a valid .npz archive"),
    ("lm.npz without its order", "asr/lm.npz", lambda: _npz_without("asr/lm.npz", "order"), "lacks the array order"),
    ("lm.npz without a table", "asr/lm.npz", lambda: _npz_without("asr/lm.npz", "ctx3"), "lacks 'ctx3'"),
    ("bundle.json not JSON", "bundle.json", lambda: b"{ not json", "bundle.json: not valid JSON"),
    ("bundle.json a list", "bundle.json", lambda: b"[1, 2]", "expected a JSON object"),
    ("bundle.json empty", "bundle.json", lambda: b"", "bundle.json: not valid JSON"),
    ("bundle.json without asr", "bundle.json", lambda: _json_edit("bundle.json", lambda m: m.pop("asr")), "no asr.files"),
    ("bundle.json without the encoder", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["asr"]["files"]["int8"].pop("encoder")), "asr.files.int8 lacks encoder"),
    ("bundle.json without tokens", "bundle.json", lambda: _json_edit("bundle.json", lambda m: m["asr"].pop("tokens")),
     "no asr.tokens"),
    ("bundle.json of another schema", "bundle.json", lambda: _json_edit("bundle.json", lambda m: m.update(schema_version=7)),
     "schema_version 7"),
    ("an unknown endpoint setting", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["endpoint"].update(silence_ms=3)), "endpoint.silence_ms"),
    ("a negative endpoint setting", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["endpoint"].update(trailing_silence_ms=-1)), "positive number"),
    ("features.sample_rate against the graph", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["features"].update(sample_rate=8000)), "features.sample_rate is 8000"),
    ("chunk_ms against the graph", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["asr"].update(chunk_ms=160)), "asr.chunk_ms is 160"),
    ("tagger.json not JSON", "tagger/tagger.json", lambda: b"{", "tagger.json: not valid JSON"),
    ("tagger.json without kind", "tagger/tagger.json", lambda: _json_edit("tagger/tagger.json", lambda m: m.pop("kind")),
     "tagger.json: no 'kind' entry"),
    ("truncated tagger graph", "tagger/bi.int8.onnx", lambda: _half("tagger/bi.int8.onnx"), "bi.int8.onnx: not a valid ONNX"),
    ("empty slot table", "tagger/slots.txt", lambda: b"", "slots.txt: empty"),
    ("iqd.json without a policy", "iqd/iqd.json", lambda: _json_edit("iqd/iqd.json", lambda m: m.pop("policy")),
     "iqd.json: no 'policy' entry"),
    ("truncated iqd graph", "iqd/iqd.int8.onnx", lambda: _half("iqd/iqd.int8.onnx"), "iqd.int8.onnx: not a valid ONNX"),
    ("truncated text.npz", "iqd/text.npz", lambda: _half("iqd/text.npz"), "text.npz: not a valid .npz"),
    ("the IQD policy against iqd.json", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["iqd"]["policy"].update(on_threshold=0.99)), "iqd.policy is"),
    ("the IQD theta against iqd.json", "bundle.json", lambda: _json_edit("bundle.json", lambda m: m["iqd"].update(theta=0.9)),
     "iqd.theta is 0.9"),
    ("the tagger policy against tagger.json", "bundle.json",
     lambda: _json_edit("bundle.json", lambda m: m["tagger"]["policy"].update(arm_threshold=0.1)), "tagger.policy is"),
]


@pytest.mark.parametrize("case,rel,content,words", CASES, ids=[c[0] for c in CASES])
def test_a_corrupt_part_is_a_bundle_error_naming_it(tmp_path: Path, case: str, rel: str, content, words: str) -> None:
    bundle = variant(tmp_path, {rel: content()})
    with pytest.raises(BundleError) as err:
        Pipeline.from_bundle(bundle)
    msg = str(err.value)
    assert words in msg and (Path(rel).name in msg or rel.split("/")[0] in msg), msg
    assert str(bundle) in msg, msg  # the path as the user gave it


@pytest.mark.parametrize("case,rel,content,words", [CASES[0], CASES[5], CASES[12], CASES[21]],
                         ids=[CASES[i][0] for i in (0, 5, 12, 21)])
def test_the_command_line_prints_the_problem_not_a_traceback(tmp_path: Path, case: str, rel: str, content,
                                                             words: str) -> None:
    bundle = variant(tmp_path, {rel: content()})
    line = json.loads((BUNDLE / "examples" / "examples.jsonl").read_text().splitlines()[0])
    (tmp_path / "m.jsonl").write_text(json.dumps({**line, "audio": str(BUNDLE / "examples" / line["audio"])}) + "\n")
    for cmd in (["transcribe", str(BUNDLE / "examples" / "01-assistant.wav")], ["eval", str(tmp_path / "m.jsonl")]):
        r = subprocess.run([sys.executable, "-m", "runtime.cli", cmd[0], "--bundle", str(bundle), *cmd[1:]],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert words in r.stderr and len(r.stderr.splitlines()) <= 2, r.stderr


def test_a_missing_bundle_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle folder"):
        Pipeline.from_bundle(tmp_path / "nothing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(BundleError, match="not a folder"):
        Pipeline.from_bundle(tmp_path / "f")
    with pytest.raises(BundleError, match="no fp16 ASR graphs"):
        Pipeline.from_bundle(BUNDLE, precision="fp16")


SMALL = [f for f in FILES if (BUNDLE / f).stat().st_size < 200_000]  # the tables, manifests, small graphs


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SMALL), st.sampled_from(["flip", "cut", "random"]),
       st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=6), st.binary(max_size=200))
def test_fuzz_bundle_files(rel: str, how: str, flips: list[tuple[int, int]], noise: bytes) -> None:
    """A bundle file with bytes flipped, cut short or replaced: the bundle loads, or the loader
    raises a BundleError naming a file of the bundle; never another exception."""
    data = bytearray((BUNDLE / rel).read_bytes())
    if how == "flip":
        for pos, value in flips:
            data[pos % len(data)] = value
    elif how == "cut":
        data = data[: flips[0][0] % len(data)]
    else:
        data = bytearray(noise)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = variant(Path(tmp), {rel: bytes(data)})
        try:
            Pipeline.from_bundle(bundle)
        except BundleError as e:
            assert str(bundle) in str(e), str(e)
