"""The IQD cache format: what the frozen ASR said about every utterance, stored once; the detectors train on it.

For one split, under CACHE/:

- `SPLIT.enc.npy`: the ASR's projected encoder output (what the runtime's encoder graph gives),
  every utterance's frames concatenated, float16 (n_frames_total, enc_dim);
- `SPLIT.fbank.npy`: the fbank frames (the independent detector's input), float16;
- `SPLIT.index.jsonl`: one line per utterance (`CachedUtt`): id, directed, speech_start /
  speech_end / duration (s, relative to the cached audio), offsets and frame counts, the
  search's tokens and the encoder frame of each (the label history), its text (`hyp`) and the
  reference `text`. Written last: its presence means the split is complete;
- `SPLIT.search.json`: which search made the tokens (`iqd.replay.SearchConfig.describe`); a split
  without it was made by greedy search (caches from before the option);
- `meta.json` (one per cache): the ASR checkpoint, its vocabulary size, encoder width and silent
  tokens.

`iqd/replay.py` fills a cache by running the ASR (`runtime.asr.AsrStream` on the torch backend);
this module only writes and reads the files, and refuses to mix splits made by different searches
(`open_splits`; HEED_IQD_MIXED_SEARCH=1 warns instead).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.model import SUBSAMPLING
from runtime.asr import silent_token_ids
from runtime.features import FbankConfig


@dataclass(frozen=True)
class CachedUtt:
    id: str
    directed: bool
    speech_start: float
    speech_end: float
    duration: float
    enc_offset: int
    n_enc: int
    fb_offset: int
    n_fb: int
    tokens: list
    token_frames: list
    hyp: str
    text: str
    source: str | None = None
    voice: str | None = None
    # the heard partials (Whisper's decoder, runtime/partials.py) over the row's audio: [frame, text]
    # where the text changed, the frame the first of the chunk whose audio completed the reading
    heard: list | None = None


def frame_seconds(fbank_cfg: FbankConfig = FbankConfig()) -> float:
    """Seconds per encoder frame of the cached ASR (0.04)."""
    return SUBSAMPLING * fbank_cfg.frame_shift_ms / 1000


def write_split(cache_dir: Path, split: str, encs: list[np.ndarray], fbs: list[np.ndarray],
                rows: list[CachedUtt], search: dict) -> Path:
    """Write one cached split: SPLIT.enc.npy, SPLIT.fbank.npy (the rows' arrays end to end),
    SPLIT.search.json (`search`: the search's describe()) and SPLIT.index.jsonl, the index last and
    atomically, so a split whose index exists is complete."""
    np.save(cache_dir / f"{split}.enc.npy", np.concatenate(encs))
    np.save(cache_dir / f"{split}.fbank.npy", np.concatenate(fbs))
    (cache_dir / f"{split}.search.json").write_text(json.dumps(search) + "\n")
    index_path = cache_dir / f"{split}.index.jsonl"
    tmp = index_path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r.__dict__) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(index_path)
    return index_path


def write_meta(cache_dir: str | Path, asr_ckpt: str | Path, vocab_size: int, enc_dim: int, pieces: list[str]) -> None:
    """CACHE/meta.json: the ASR, its vocabulary size, encoder width and silent tokens."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    meta = {"asr": str(asr_ckpt), "vocab_size": vocab_size, "enc_dim": enc_dim, "silent_tokens": silent_token_ids(pieces)}
    (Path(cache_dir) / "meta.json").write_text(json.dumps(meta) + "\n")


class IqdCache:
    """One cached split: `utts` (CachedUtt), `enc(i)` (n_enc, enc_dim) and `fbank(i)` (n_fb, n_mels) float32."""

    def __init__(self, cache_dir: str | Path, split: str) -> None:
        cache_dir = Path(cache_dir)
        self.dir, self.split = cache_dir, split
        self._enc = np.load(cache_dir / f"{split}.enc.npy", mmap_mode="r")
        self._fb = np.load(cache_dir / f"{split}.fbank.npy", mmap_mode="r")
        with open(cache_dir / f"{split}.index.jsonl", encoding="utf-8") as f:
            self.utts = [CachedUtt(**json.loads(line)) for line in f if line.strip()]

    def __len__(self) -> int:
        return len(self.utts)

    def enc(self, i: int) -> np.ndarray:
        u = self.utts[i]
        return np.asarray(self._enc[u.enc_offset : u.enc_offset + u.n_enc], np.float32)

    def fbank(self, i: int) -> np.ndarray:
        u = self.utts[i]
        return np.asarray(self._fb[u.fb_offset : u.fb_offset + u.n_fb], np.float32)

    @property
    def enc_dim(self) -> int:
        return int(self._enc.shape[1])

    @property
    def search(self) -> dict:
        """The search that made the split's tokens (SPLIT.search.json; greedy without it)."""
        return split_search(self.dir, self.split)

    @property
    def silent_tokens(self) -> set[int]:
        """Token ids that carry no speech (the bare word boundary): they do not start the decider."""
        return set(json.loads((self.dir / "meta.json").read_text()).get("silent_tokens", []))

    @property
    def vocab_size(self) -> int:
        """The ASR's vocabulary size (meta.json, written with the cache)."""
        return int(json.loads((self.dir / "meta.json").read_text())["vocab_size"])


class ConcatCache:
    """Several cached splits of one ASR read as one (`utts`, `enc(i)`, `fbank(i)` as `IqdCache`):
    single utterances and continuous recordings (`iqd.replay.cache_stream_split`) together."""

    def __init__(self, parts: list[IqdCache]) -> None:
        self.parts = parts
        self.dir, self.split = parts[0].dir, "+".join(p.split for p in parts)
        self.utts = [u for p in parts for u in p.utts]
        self._where = [(p, i) for p in parts for i in range(len(p))]

    def __len__(self) -> int:
        return len(self.utts)

    def enc(self, i: int) -> np.ndarray:
        part, j = self._where[i]
        return part.enc(j)

    def fbank(self, i: int) -> np.ndarray:
        part, j = self._where[i]
        return part.fbank(j)

    enc_dim = property(lambda self: self.parts[0].enc_dim)
    silent_tokens = property(lambda self: self.parts[0].silent_tokens)
    vocab_size = property(lambda self: self.parts[0].vocab_size)


def same_search(a: dict, b: dict) -> bool:
    """Whether two SPLIT.search.json made the same label histories (the LM compared by file name)."""
    def key(d: dict) -> dict:
        d = dict(d)
        if d.get("lm"):
            d["lm"] = Path(d["lm"]).name
        return d
    return key(a) == key(b)


def split_search(cache_dir: str | Path, split: str) -> dict:
    """The search (its describe()) of a cached split; greedy for a split cached before the option."""
    p = Path(cache_dir) / f"{split}.search.json"
    return json.loads(p.read_text()) if p.exists() else {"method": "greedy"}


def check_reuse(cache_dir: Path, split: str, search: dict) -> None:
    """A finished split is reused only if the same search (its describe()) made it."""
    have = split_search(cache_dir, split)
    if not same_search(have, search):
        raise ValueError(f"{cache_dir}/{split} was cached with search {have}, not {search}: "
                         f"use another --cache folder (or delete the split's files)")


class MixedSearchError(ValueError):
    pass


def check_searches(cache_dir: str | Path, splits: list[str] | None = None, allow: bool | None = None) -> dict:
    """The search of each finished split (all of CACHE's by default); raises MixedSearchError when
    they differ (the detector would train on one label history and be tested on another), unless
    `allow` (default: environment HEED_IQD_MIXED_SEARCH=1), which warns instead. Returns {split: search}."""
    cache_dir = Path(cache_dir)
    if splits is None:
        splits = sorted(p.name[: -len(".index.jsonl")] for p in cache_dir.glob("*.index.jsonl"))
    found = {s: split_search(cache_dir, s) for s in splits if (cache_dir / f"{s}.index.jsonl").exists()}
    kinds = list(found.values())
    if any(not same_search(kinds[0], k) for k in kinds[1:]):
        msg = (f"{cache_dir}: the cached splits' tokens were made by different searches: "
               + "; ".join(f"{s}: {json.dumps(d)}" for s, d in found.items()))
        if allow is None:
            allow = os.environ.get("HEED_IQD_MIXED_SEARCH") == "1"
        if not allow:
            raise MixedSearchError(msg + " (set HEED_IQD_MIXED_SEARCH=1 to go on anyway)")
        print("WARNING: " + msg, file=sys.stderr, flush=True)
    return found


def open_splits(cache_dir: str | Path, split: str, streams: bool) -> IqdCache | ConcatCache:
    """The cached split, with its continuous recordings (SPLIT-streams) when `streams`; refuses
    (`check_searches`) when the cache's splits were made by different searches."""
    check_searches(cache_dir)
    one = IqdCache(cache_dir, split)
    if not streams:
        return one
    return ConcatCache([one, open_stream_split(cache_dir, split)])


def open_stream_split(cache_dir: str | Path, split: str) -> IqdCache:
    """The cached continuous recordings of SPLIT (SPLIT-streams)."""
    if not (Path(cache_dir) / f"{split}-streams.index.jsonl").exists():
        raise FileNotFoundError(f"{cache_dir}/{split}-streams.index.jsonl missing: "
                                f"python -m iqd.replay --split {split} --streams N first")
    return IqdCache(cache_dir, f"{split}-streams")


def join_caches(first: str | Path, second: str | Path, out: str | Path, splits: list[str] | None = None) -> Path:
    """A cache whose encoder frames are FIRST's and SECOND's side by side (the same rows: caches
    filled together by `iqd.replay.build_bundle_cache`, the transducer's and the student's), for a
    detector that reads both; the other files are FIRST's (linked). meta.json: FIRST's, enc_dim
    the sum, `joined` the two widths in order, and SECOND's `student` when it has one."""
    first, second, out = Path(first), Path(second), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = sorted(p.name[: -len(".index.jsonl")] for p in first.glob("*.index.jsonl")
                        if (second / p.name).exists())
    for split in splits:
        a, b = IqdCache(first, split), IqdCache(second, split)
        if [(u.id, u.n_enc) for u in a.utts] != [(u.id, u.n_enc) for u in b.utts]:
            raise ValueError(f"{first} and {second} hold different rows for {split}")
        np.save(out / f"{split}.enc.npy", np.concatenate([np.asarray(a._enc), np.asarray(b._enc)], axis=1))
        for suffix in (".fbank.npy", ".search.json", ".index.jsonl"):  # the index last: the split is complete
            link = out / f"{split}{suffix}"
            link.unlink(missing_ok=True)
            link.symlink_to((first / f"{split}{suffix}").resolve())
    ma = json.loads((first / "meta.json").read_text())
    mb = json.loads((second / "meta.json").read_text())
    meta = {**ma, "enc_dim": ma["enc_dim"] + mb["enc_dim"], "joined": [ma["enc_dim"], mb["enc_dim"]]}
    if mb.get("student"):
        meta["student"] = mb["student"]
    (out / "meta.json").write_text(json.dumps(meta) + "\n")
    return out
