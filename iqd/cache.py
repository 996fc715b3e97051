"""What the frozen ASR says about every utterance, computed once: the detectors train on this.

For one split, under CACHE/:

- `SPLIT.enc.npy`: the ASR's projected encoder output (what the runtime's encoder graph gives),
  every utterance's frames concatenated, float16 (n_frames_total, enc_dim);
- `SPLIT.fbank.npy`: the fbank frames (the independent detector's input), float16;
- `SPLIT.index.jsonl`: one line per utterance: id, directed, speech_start / speech_end / duration
  (s, relative to the cached audio), offsets and frame counts, the search's tokens and the
  encoder frame of each (the label history), its text (`hyp`) and the reference `text`.
  Written last: its presence means the split is complete;
- `SPLIT.search.json`: which search made the tokens (`SearchConfig.describe`); a split without
  it was made by greedy search (caches from before the option).

The search (`SearchConfig`, `--search`): `greedy` (the transducer's greedy search) or `beam`:
the runtime's modified beam search (`runtime.search`, beam 4, with shallow fusion of a character
n-gram LM when `--lm` is given), run on the torch decoder and joiner chunk by chunk (320 ms) as the
runtime runs it. The label history is then what the pipeline feeds its IQD stream
(`runtime/pipeline.py: _feed_iqd`): after each chunk, the tokens the then-best hypothesis emitted
at that chunk's frames (a later chunk may re-rank the beam; the IQD has already seen the old
tokens). `hyp` (the cascade's input) is the finished segment's transcript (the beam ranked with
the LM's end-of-sentence score, `runtime.search.rank_finished`). Train, dev and test should be made
by the same search: `open_splits` refuses a mix unless HEED_IQD_MIXED_SEARCH=1.

The encoder runs whole utterances under its chunk mask (`Encoder.forward`), which computes what
the streaming `step` computes. Training utterances may be cropped around the speech
(`crop_margin_s`, before / after) to save encoder time; dev and test are kept whole, so their
latencies and leading silences are those the runtime sees.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.features import fbank
from asr.model import SUBSAMPLING, Transducer
from asr.tokenizer import BLANK_ID
from corpus.manifest import audio_path, read_manifest
from runtime.audio import read_audio
from runtime.features import FbankConfig
from runtime.search import DecoderCache, Hypothesis, modified_beam_search, rank_finished


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


@dataclass(frozen=True)
class SearchConfig:
    """The search whose tokens the cache records: "greedy" or "beam" (modified beam search of
    `beam`, with shallow fusion of the n-gram LM file `lm` when given; the scale, bonus and
    end-of-sentence scale default to the bundle's tuned fusion, docs/asr.md "Shallow fusion")."""

    method: str = "greedy"
    beam: int = 4
    lm: str | None = None
    lm_scale: float = 0.65
    lm_bonus: float = 0.75
    lm_eos_scale: float = 0.8
    history: str = "fed"  # beam: "fed" (what the runtime feeds its IQD) or "final" (the finished best's tokens)

    def __post_init__(self) -> None:
        if self.method not in ("greedy", "beam"):
            raise ValueError(f"search must be greedy or beam, got {self.method!r}")
        if self.method == "greedy" and self.lm:
            raise ValueError("an LM needs --search beam (greedy search has no fusion)")
        if self.history not in ("fed", "final"):
            raise ValueError(f"history must be fed or final, got {self.history!r}")

    def describe(self) -> dict:
        """What SPLIT.search.json stores (and what splits are compared by)."""
        if self.method == "greedy":
            return {"method": "greedy"}
        d = {"method": "beam", "beam": self.beam, "history": self.history, "lm": None}
        if self.lm:
            d.update(lm=str(self.lm), lm_scale=self.lm_scale, lm_bonus=self.lm_bonus, lm_eos_scale=self.lm_eos_scale)
        return d

    @classmethod
    def from_describe(cls, d: dict) -> "SearchConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def fusion(self, vocab_size: int):
        """The LmFusion, or None without an LM."""
        if not self.lm:
            return None
        from runtime.lm import LmFusion, NgramLM

        lm = NgramLM.load(self.lm)
        if lm.vocab_size != vocab_size:
            raise ValueError(f"{self.lm}: an LM over {lm.vocab_size} tokens, the ASR has {vocab_size}")
        return LmFusion(lm, self.lm_scale, self.lm_bonus, self.lm_eos_scale)

    def stream(self, model: Transducer) -> "BeamStream | None":
        """The BeamStream of this search on `model`, or None for greedy search."""
        if self.method != "beam":
            return None
        return BeamStream(model, self.beam, self.fusion(model.cfg.vocab_size), self.history)


def same_search(a: dict, b: dict) -> bool:
    """Whether two SPLIT.search.json made the same label histories (the LM compared by file name)."""
    def key(d: dict) -> dict:
        d = dict(d)
        if d.get("lm"):
            d["lm"] = Path(d["lm"]).name
        return d
    return key(a) == key(b)


class BeamStream:
    """The runtime's modified beam search (`runtime.search`) on the torch decoder and joiner, fed
    chunk by chunk; `chunk` returns what the pipeline feeds its IQD after that chunk: the tokens
    (and frames) the best hypothesis emitted at the chunk's frames."""

    def __init__(self, model: Transducer, beam: int = 4, lm=None, history: str = "fed") -> None:
        def decode(contexts: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model.decoder(torch.from_numpy(contexts))[:, 0].numpy()

        def join(enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model.joiner(torch.from_numpy(enc), torch.from_numpy(dec)).numpy()

        self.decoder = DecoderCache(decode, model.cfg.context_size)
        self.join, self.beam, self.lm, self.history = join, beam, lm, history
        self.hyps = [Hypothesis()]

    def reset(self) -> None:
        """A new segment: a fresh hypothesis (the runtime's `new_segment`)."""
        self.hyps = [Hypothesis()]

    @property
    def best(self):
        return self.hyps[0]

    def chunk(self, enc: np.ndarray, first_frame: int) -> tuple[list[int], list[int]]:
        enc = np.ascontiguousarray(enc, dtype=np.float32)
        self.hyps = modified_beam_search(enc, self.hyps, self.decoder, self.join, first_frame, self.beam, self.lm)
        best = self.hyps[0]
        pairs = [(t, f) for t, f in zip(best.tokens, best.frames) if first_frame <= f < first_frame + len(enc)]
        return [t for t, _ in pairs], [f for _, f in pairs]

    def final(self):
        """The finished segment's best hypothesis: the beam ranked with the LM's end-of-sentence score."""
        return rank_finished(self.hyps, self.lm)[0]


def beam_with_frames(stream: BeamStream, enc: np.ndarray, chunk_frames: int,
                     history: str | None = None) -> tuple[list[int], list[int], list[int]]:
    """One utterance's encoder output searched chunk by chunk from a fresh hypothesis: the tokens and
    frames the runtime's IQD would have been fed (history "fed"; "final": those of the finished
    best hypothesis), and the finished transcript's tokens."""
    stream.reset()
    toks, frs = [], []
    for start in range(0, len(enc), chunk_frames):
        t, f = stream.chunk(enc[start : start + chunk_frames], start)
        toks += t
        frs += f
    best = stream.final()
    if (history or stream.history) == "final":
        toks, frs = list(best.tokens), list(best.frames)
    return toks, frs, list(best.tokens)


def frame_seconds(fbank_cfg: FbankConfig = FbankConfig()) -> float:
    """Seconds per encoder frame (0.04)."""
    return SUBSAMPLING * fbank_cfg.frame_shift_ms / 1000


@torch.no_grad()
def greedy_with_frames(model: Transducer, enc: torch.Tensor, enc_lens: torch.Tensor,
                       max_symbols_per_frame: int = 3) -> list[tuple[list[int], list[int]]]:
    """Greedy transducer search (as `runtime.search.greedy_search`) that also returns the frame of
    each token. enc: (N, T, joiner_dim) projected encoder output. Returns (tokens, frames) per utterance."""
    ctx = model.cfg.context_size
    n = enc.shape[0]
    hyps: list[list[int]] = [[BLANK_ID] * ctx for _ in range(n)]
    frames: list[list[int]] = [[] for _ in range(n)]
    dec = model.decoder(torch.tensor([h[-ctx:] for h in hyps]))[:, 0]
    for t in range(enc.shape[1]):
        active = enc_lens > t
        for _ in range(max_symbols_per_frame):
            best = model.joiner(enc[:, t], dec).argmax(dim=-1)
            emit = (best != BLANK_ID) & active
            if not bool(emit.any()):
                break
            for i in torch.nonzero(emit).flatten().tolist():
                hyps[i].append(int(best[i]))
                frames[i].append(t)
            new = model.decoder(torch.tensor([h[-ctx:] for h in hyps]))[:, 0]
            dec = torch.where(emit[:, None], new, dec)
    return [(h[ctx:], f) for h, f in zip(hyps, frames)]


@torch.no_grad()
def encode_batch(model: Transducer, feats: list[torch.Tensor], beam: BeamStream | None = None,
                 ) -> list[tuple[np.ndarray, list[int], list[int], list[int]]]:
    """Projected encoder output, tokens/frames (the label history) and transcript tokens of each
    feature matrix (T, n_mels): greedy search, or `beam` chunk by chunk when given."""
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    lens = torch.tensor([len(f) for f in feats])
    enc, enc_lens = model.encoder(x, lens)
    enc = model.encoder_proj(enc)
    out = []
    if beam is not None:
        for i in range(len(feats)):
            e = enc[i, : int(enc_lens[i])].numpy()
            out.append((e, *beam_with_frames(beam, e, model.cfg.chunk_frames)))
        return out
    for i, (toks, frs) in enumerate(greedy_with_frames(model, enc, enc_lens)):
        out.append((enc[i, : int(enc_lens[i])].numpy(), toks, frs, toks))
    return out


def build_cache(model: Transducer, tokens_decode, manifest: str | Path, cache_dir: str | Path, split: str,
                limit: int | None = None, crop_margin_s: tuple[float, float] | None = None,
                batch_s: float = 60.0, progress: bool = True, search: SearchConfig = SearchConfig()) -> Path:
    """Run the frozen ASR over `manifest` (its first `limit` utterances with directed labels) and
    store the split (see the module docstring). A finished split is reused (an error if another
    search made it). Returns the index path.

    tokens_decode: ids -> text (the tokenizer's decode).
    """
    cache_dir = Path(cache_dir)
    index_path = cache_dir / f"{split}.index.jsonl"
    if index_path.exists():
        check_reuse(cache_dir, split, search)
        return index_path
    cache_dir.mkdir(parents=True, exist_ok=True)
    beam = search.stream(model)
    utts = [u for u in read_manifest(manifest) if u.directed is not None and u.speech_start is not None][:limit]
    cfg = FbankConfig()
    model = model.eval()
    encs, fbs, rows = [], [], []
    enc_off = fb_off = 0
    t0 = time.monotonic()
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration or 0.0)  # little padding per batch
    results: dict[int, tuple] = {}
    batch: list[int] = []

    def flush() -> None:
        feats = [results[i][0] for i in batch]
        for i, enc_out in zip(batch, encode_batch(model, [torch.from_numpy(f) for f in feats], beam)):
            results[i] = (results[i][0], results[i][1], enc_out)
        batch.clear()

    for k, i in enumerate(order):
        u = utts[i]
        samples, sr = read_audio(audio_path(manifest, u))
        samples = samples.mean(axis=1)
        start = 0.0
        if crop_margin_s is not None:
            start = max(0.0, u.speech_start - crop_margin_s[0])
            samples = samples[int(start * sr) : int((u.speech_end + crop_margin_s[1]) * sr)]
        results[i] = (fbank(torch.from_numpy(np.ascontiguousarray(samples)), cfg).numpy(), start, None)
        batch.append(i)
        if sum(len(results[j][0]) for j in batch) * cfg.frame_shift_ms / 1000 >= batch_s:
            flush()
        if progress and (k + 1) % 200 == 0:
            print(f"  {split}: {k + 1}/{len(utts)} utterances, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    if batch:
        flush()
    for i, u in enumerate(utts):
        fb, start, (enc, toks, frs, text_toks) = results[i]
        encs.append(enc.astype(np.float16))
        fbs.append(fb.astype(np.float16))
        rows.append(CachedUtt(u.id, bool(u.directed), round(u.speech_start - start, 3), round(u.speech_end - start, 3),
                              round(len(fb) * cfg.frame_shift_ms / 1000 + 0.015, 3), enc_off, len(enc), fb_off, len(fb),
                              toks, frs, tokens_decode(text_toks), u.text, u.source, u.voice))
        enc_off += len(enc)
        fb_off += len(fb)
    return write_split(cache_dir, split, encs, fbs, rows, search)


def write_split(cache_dir: Path, split: str, encs: list[np.ndarray], fbs: list[np.ndarray],
                rows: list[CachedUtt], search: SearchConfig = SearchConfig()) -> Path:
    """Write one cached split: SPLIT.enc.npy, SPLIT.fbank.npy (the rows' arrays end to end),
    SPLIT.search.json and SPLIT.index.jsonl, the index last and atomically, so a split whose index
    exists is complete."""
    np.save(cache_dir / f"{split}.enc.npy", np.concatenate(encs))
    np.save(cache_dir / f"{split}.fbank.npy", np.concatenate(fbs))
    (cache_dir / f"{split}.search.json").write_text(json.dumps(search.describe()) + "\n")
    index_path = cache_dir / f"{split}.index.jsonl"
    tmp = index_path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r.__dict__) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(index_path)
    return index_path


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
    single utterances and continuous recordings (`iqd.streams.cache_stream_split`) together."""

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


def split_search(cache_dir: str | Path, split: str) -> dict:
    """SearchConfig.describe() of a cached split; greedy for a split cached before the option."""
    p = Path(cache_dir) / f"{split}.search.json"
    return json.loads(p.read_text()) if p.exists() else {"method": "greedy"}


def check_reuse(cache_dir: Path, split: str, search: SearchConfig) -> None:
    """A finished split is reused only if the same search made it."""
    have = split_search(cache_dir, split)
    if not same_search(have, search.describe()):
        raise ValueError(f"{cache_dir}/{split} was cached with search {have}, not {search.describe()}: "
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
                                f"python -m iqd.cache --split {split} --streams N first")
    return IqdCache(cache_dir, f"{split}-streams")


def silent_tokens(pieces: list[str]) -> list[int]:
    """Ids of pieces that are nothing but the word boundary (a character model emits "\u2581" in silence)."""
    return [i for i, p in enumerate(pieces) if i > 0 and not p.replace("\u2581", "")]


def write_meta(cache_dir: str | Path, asr_ckpt: str | Path, model: Transducer, tok) -> None:
    """CACHE/meta.json: the ASR, its vocabulary size, encoder width and silent tokens."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    meta = {"asr": str(asr_ckpt), "vocab_size": model.cfg.vocab_size, "enc_dim": model.cfg.joiner_dim,
            "silent_tokens": silent_tokens(tok.pieces())}
    (Path(cache_dir) / "meta.json").write_text(json.dumps(meta) + "\n")


def cache_split(asr_ckpt: str | Path, corpus: str | Path, cache_dir: str | Path, split: str,
                limit: int | None = None, crop: bool = False, progress: bool = True,
                search: SearchConfig = SearchConfig()) -> Path:
    from asr.export import load_checkpoint
    from asr.tokenizer import Tokenizer

    model, _ = load_checkpoint(asr_ckpt)
    tok = Tokenizer(Path(asr_ckpt).parent / "tokens.model")
    write_meta(cache_dir, asr_ckpt, model, tok)
    return build_cache(model, tok.decode, Path(corpus) / f"{split}.jsonl", cache_dir, split, limit,
                       (0.5, 0.3) if crop else None, progress=progress, search=search)


def add_search_args(p: argparse.ArgumentParser) -> None:
    d = SearchConfig()
    p.add_argument("--search", choices=["greedy", "beam"], default="greedy",
                   help="the search whose tokens are cached: greedy, or the runtime's modified beam search")
    p.add_argument("--beam", type=int, default=d.beam)
    p.add_argument("--lm", help="character n-gram LM (.npz) fused into the beam search (the bundle's asr/lm.npz)")
    p.add_argument("--lm-scale", type=float, default=d.lm_scale)
    p.add_argument("--lm-bonus", type=float, default=d.lm_bonus)
    p.add_argument("--lm-eos-scale", type=float, default=d.lm_eos_scale)
    p.add_argument("--history", choices=["fed", "final"], default="fed",
                   help="beam: cache the tokens the runtime feeds its IQD chunk by chunk (fed, default) or the "
                        "finished best hypothesis's (final: what an IQD replayed on every re-ranking would see)")


def search_from_args(a: argparse.Namespace) -> SearchConfig:
    return SearchConfig(a.search, a.beam, a.lm, a.lm_scale, a.lm_bonus, a.lm_eos_scale, a.history)


def main(argv: list[str] | None = None) -> int:
    """python -m iqd.cache --asr CKPT --corpus DIR --cache DIR --split S [--limit N] [--crop]
    [--search beam --lm LM.npz]: one split
    (lets a script fill the splits in parallel processes before `heed train iqd --cache DIR`)."""
    p = argparse.ArgumentParser(prog="python -m iqd.cache", description=main.__doc__)
    p.add_argument("--asr", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--crop", action="store_true", help="keep 0.5 s before and 0.3 s after the speech")
    p.add_argument("--streams", type=int, default=0,
                   help="instead: this many continuous recordings of the split's utterances after the first "
                        "--limit, as the split SPLIT-streams (iqd.streams.cache_stream_split)")
    p.add_argument("--threads", type=int, default=1)
    add_search_args(p)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    search = search_from_args(a)
    t0 = time.monotonic()
    if a.streams:
        from iqd.streams import cache_stream_split

        cache_stream_split(a.asr, a.corpus, a.cache, a.split, a.streams, skip=a.limit or 0, search=search)
    else:
        cache_split(a.asr, a.corpus, a.cache, a.split, a.limit, a.crop, search=search)
    print(f"cached {a.split} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
