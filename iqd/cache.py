"""What the frozen ASR says about every utterance, computed once: the detectors train on this.

For one split, under CACHE/:

- `SPLIT.enc.npy`: the ASR's projected encoder output (what the runtime's encoder graph gives),
  every utterance's frames concatenated, float16 (n_frames_total, enc_dim);
- `SPLIT.fbank.npy`: the fbank frames (the independent detector's input), float16;
- `SPLIT.index.jsonl`: one line per utterance: id, directed, speech_start / speech_end / duration
  (s, relative to the cached audio), offsets and frame counts, the greedy search's tokens and the
  encoder frame of each (the label history), its text (`hyp`) and the reference `text`.
  Written last: its presence means the split is complete.

The encoder runs whole utterances under its chunk mask (`Encoder.forward`), which computes what
the streaming `step` computes. Training utterances may be cropped around the speech
(`crop_margin_s`, before / after) to save encoder time; dev and test are kept whole, so their
latencies and leading silences are those the runtime sees.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.features import fbank
from asr.model import SUBSAMPLING, Transducer
from asr.tokenizer import BLANK_ID
from corpus.manifest import audio_path, read_manifest
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
def encode_batch(model: Transducer, feats: list[torch.Tensor]) -> list[tuple[np.ndarray, list[int], list[int]]]:
    """Projected encoder output and greedy tokens/frames of each feature matrix (T, n_mels)."""
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    lens = torch.tensor([len(f) for f in feats])
    enc, enc_lens = model.encoder(x, lens)
    enc = model.encoder_proj(enc)
    out = []
    for i, (toks, frs) in enumerate(greedy_with_frames(model, enc, enc_lens)):
        out.append((enc[i, : int(enc_lens[i])].numpy(), toks, frs))
    return out


def build_cache(model: Transducer, tokens_decode, manifest: str | Path, cache_dir: str | Path, split: str,
                limit: int | None = None, crop_margin_s: tuple[float, float] | None = None,
                batch_s: float = 60.0, progress: bool = True) -> Path:
    """Run the frozen ASR over `manifest` (its first `limit` utterances with directed labels) and
    store the split (see the module docstring). A finished split is reused. Returns the index path.

    tokens_decode: ids -> text (the tokenizer's decode).
    """
    cache_dir = Path(cache_dir)
    index_path = cache_dir / f"{split}.index.jsonl"
    if index_path.exists():
        return index_path
    cache_dir.mkdir(parents=True, exist_ok=True)
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
        for i, enc_out in zip(batch, encode_batch(model, [torch.from_numpy(f) for f in feats])):
            results[i] = (results[i][0], results[i][1], enc_out)
        batch.clear()

    for k, i in enumerate(order):
        u = utts[i]
        samples, sr = sf.read(audio_path(manifest, u), dtype="float32", always_2d=True)
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
        fb, start, (enc, toks, frs) = results[i]
        encs.append(enc.astype(np.float16))
        fbs.append(fb.astype(np.float16))
        rows.append(CachedUtt(u.id, bool(u.directed), round(u.speech_start - start, 3), round(u.speech_end - start, 3),
                              round(len(fb) * cfg.frame_shift_ms / 1000 + 0.015, 3), enc_off, len(enc), fb_off, len(fb),
                              toks, frs, tokens_decode(toks), u.text, u.source, u.voice))
        enc_off += len(enc)
        fb_off += len(fb)
    return write_split(cache_dir, split, encs, fbs, rows)


def write_split(cache_dir: Path, split: str, encs: list[np.ndarray], fbs: list[np.ndarray],
                rows: list[CachedUtt]) -> Path:
    """Write one cached split: SPLIT.enc.npy, SPLIT.fbank.npy (the rows' arrays end to end) and
    SPLIT.index.jsonl, the index last and atomically, so a split whose index exists is complete."""
    np.save(cache_dir / f"{split}.enc.npy", np.concatenate(encs))
    np.save(cache_dir / f"{split}.fbank.npy", np.concatenate(fbs))
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


def open_splits(cache_dir: str | Path, split: str, streams: bool) -> IqdCache | ConcatCache:
    """The cached split, with its continuous recordings (SPLIT-streams) when `streams`."""
    one = IqdCache(cache_dir, split)
    if not streams:
        return one
    if not (Path(cache_dir) / f"{split}-streams.index.jsonl").exists():
        raise FileNotFoundError(f"{cache_dir}/{split}-streams.index.jsonl missing: "
                                f"python -m iqd.cache --split {split} --streams N first")
    return ConcatCache([one, IqdCache(cache_dir, f"{split}-streams")])


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
                limit: int | None = None, crop: bool = False, progress: bool = True) -> Path:
    from asr.export import load_checkpoint
    from asr.tokenizer import Tokenizer

    model, _ = load_checkpoint(asr_ckpt)
    tok = Tokenizer(Path(asr_ckpt).parent / "tokens.model")
    write_meta(cache_dir, asr_ckpt, model, tok)
    return build_cache(model, tok.decode, Path(corpus) / f"{split}.jsonl", cache_dir, split, limit,
                       (0.5, 0.3) if crop else None, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """python -m iqd.cache --asr CKPT --corpus DIR --cache DIR --split S [--limit N] [--crop]: one split
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
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.monotonic()
    if a.streams:
        from iqd.streams import cache_stream_split

        cache_stream_split(a.asr, a.corpus, a.cache, a.split, a.streams, skip=a.limit or 0)
    else:
        cache_split(a.asr, a.corpus, a.cache, a.split, a.limit, a.crop)
    print(f"cached {a.split} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
