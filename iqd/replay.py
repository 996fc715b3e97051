"""Filling the IQD cache (`iqd/cache.py`): the frozen ASR replayed over a corpus by the runtime's own stream.

Every utterance's label history is what `runtime.asr.AsrStream` gives, on the torch backend
(`asr.backend.TorchTransducer`): the search (`SearchConfig`, `--search`) is `greedy` (the
runtime's greedy search) or `beam` (the runtime's modified beam search, beam 4, with shallow
fusion of a character n-gram LM when `--lm` is given), chunk by chunk (320 ms) as the runtime
runs it. The label history is then what the pipeline feeds its IQD stream (each chunk's
`ChunkResult.tokens_by_frame`): after each chunk, the tokens the then-best hypothesis emitted at
that chunk's frames (a later chunk may re-rank the beam; the IQD has already seen the old
tokens). `hyp` (the cascade's input) is the finished segment's transcript (the beam ranked with
the LM's end-of-sentence score, `AsrStream.final_hypothesis`). Train, dev and test should be made
by the same search: `iqd.cache.open_splits` refuses a mix unless HEED_IQD_MIXED_SEARCH=1.

Utterances: the encoder runs whole utterances in batches under its chunk mask
(`TorchTransducer.encode`), which computes what the streaming step computes, and the stream
searches that output chunk by chunk (`AsrStream.search_encoder_out`). Training utterances may be
cropped around the speech (`crop_margin_s`, before / after) to save encoder time; dev and test
are kept whole, so their latencies and leading silences are those the runtime sees.

Continuous recordings (`cache_stream_split`, `--streams N`): the stream decodes them chunk by
chunk with its endpointer (`iqd.streams.run_asr`), one cached row per matched utterance.

    python -m iqd.replay --asr CKPT --corpus DIR --cache DIR --split S [--limit N] [--crop] [--search beam --lm LM.npz]

Without a checkpoint (`build_bundle_cache`, `--bundle`): the bundle's int8 transducer and its own
search stream each utterance as the pipeline does; `--student` adds a second cache of the same
rows with the streaming student's states (the IQD on the student, docs/iqd_student.md):

    python -m iqd.replay --bundle models/default --student exp/student/onnx --student-cache CACHE_S \
        --corpus DIR --cache CACHE_T --split S [--limit N] [--crop]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from asr.backend import TorchTransducer
from asr.features import fbank
from runtime.manifest import audio_path, read_manifest
from iqd.cache import CachedUtt, check_reuse, frame_seconds, write_meta, write_split
from runtime.asr import AsrStream
from runtime.audio import read_audio
from runtime.config import reject_unknown
from runtime.features import FbankConfig
from runtime.iqd_text import pieces_text
from runtime.lm import FUSION_DEFAULTS, LmFusion

if TYPE_CHECKING:
    from runtime.partials import StudentEncoder


@dataclass(frozen=True)
class SearchConfig:
    """The search whose tokens the cache records: "greedy" or "beam" (modified beam search of
    `beam`, with shallow fusion of the n-gram LM file `lm` when given; the scale, bonus and
    end-of-sentence scale default to the bundle's tuned fusion, `runtime.lm.FUSION_DEFAULTS`)."""

    method: str = "greedy"
    beam: int = 4
    lm: str | None = None
    lm_scale: float = FUSION_DEFAULTS.scale
    lm_bonus: float = FUSION_DEFAULTS.bonus
    lm_eos_scale: float = FUSION_DEFAULTS.eos_scale
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
        """The config of a SPLIT.search.json; an unknown key is an error."""
        reject_unknown(cls, d, f"search setting(s) in {d}")
        return cls(**d)

    def fusion(self, vocab_size: int) -> LmFusion | None:
        """The LmFusion, or None without an LM."""
        if not self.lm:
            return None
        from runtime.lm import NgramLM

        lm = NgramLM.load(self.lm)
        if lm.vocab_size != vocab_size:
            raise ValueError(f"{self.lm}: an LM over {lm.vocab_size} tokens, the ASR has {vocab_size}")
        return LmFusion(lm, self.lm_scale, self.lm_bonus, self.lm_eos_scale)

    @property
    def history_mode(self) -> str:
        """Which tokens a segment's label history holds: greedy search never re-ranks, so "fed"."""
        return self.history if self.method == "beam" else "fed"

    def stream(self, asr: TorchTransducer) -> AsrStream:
        """The runtime's stream with this search on `asr` (greedy: beam 1), the default endpointer."""
        beam = self.beam if self.method == "beam" else 1
        return AsrStream(asr, beam=beam, lm=self.fusion(asr.vocab_size))


def replay_utterance(stream: AsrStream, enc: np.ndarray, history: str = "fed") -> tuple[list[int], list[int], list[int]]:
    """One utterance's encoder output (T, J) searched chunk by chunk from a fresh hypothesis: the
    tokens and frames the runtime's IQD would have been fed (history "fed"; "final": those of the
    finished best hypothesis), and the finished transcript's tokens."""
    stream.restart(0)
    tokens, frames = [], []
    for chunk in stream.search_encoder_out(enc):
        t, f = chunk.emitted()
        tokens += t
        frames += f
    best = stream.final_hypothesis()
    if history == "final":
        tokens, frames = list(best.tokens), list(best.frames)
    return tokens, frames, list(best.tokens)


def build_cache(asr: TorchTransducer, tokens_decode, manifest: str | Path, cache_dir: str | Path, split: str,
                limit: int | None = None, crop_margin_s: tuple[float, float] | None = None,
                batch_s: float = 60.0, progress: bool = True, search: SearchConfig = SearchConfig()) -> Path:
    """Run the frozen ASR over `manifest` (its first `limit` utterances with directed labels) and
    store the split (`iqd/cache.py`). A finished split is reused (an error if another search made
    it). Returns the index path.

    tokens_decode: ids -> text (the tokenizer's decode).
    """
    cache_dir = Path(cache_dir)
    index_path = cache_dir / f"{split}.index.jsonl"
    if index_path.exists():
        check_reuse(cache_dir, split, search.describe())
        return index_path
    cache_dir.mkdir(parents=True, exist_ok=True)
    stream = search.stream(asr)
    utts = [u for u in read_manifest(manifest) if u.directed is not None and u.speech_start is not None][:limit]
    cfg = FbankConfig()
    encs, fbs, rows = [], [], []
    enc_off = fb_off = 0
    t0 = time.monotonic()
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration or 0.0)  # little padding per batch
    results: dict[int, tuple] = {}
    batch: list[int] = []

    def flush() -> None:
        for i, enc in zip(batch, asr.encode([torch.from_numpy(results[i][0]) for i in batch])):
            results[i] = (results[i][0], results[i][1], (enc, *replay_utterance(stream, enc, search.history_mode)))
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
    return write_split(cache_dir, split, encs, fbs, rows, search.describe())


def bundle_search(bundle_dir: str | Path) -> dict:
    """The search a bundle's pipeline runs (bundle.json `asr.search`, its LM), as SPLIT.search.json describes it."""
    from runtime.bundle import Bundle

    asr = Bundle.load(bundle_dir).manifest["asr"]
    search = asr.get("search", {"method": "modified_beam_search", "beam": 4})
    beam = int(search.get("beam", 4)) if search.get("method") == "modified_beam_search" else 1
    return {"method": "beam" if beam > 1 else "greedy", "beam": beam, "history": "fed",
            "lm": asr["lm"]["file"] if asr.get("lm") and beam > 1 else None, "bundle": str(bundle_dir)}


def bundle_stream(bundle_dir: str | Path, heard: bool = False) -> tuple[AsrStream, list[str], object]:
    """The bundle's exported transducer and search as the shipped pipeline runs them (int8 ONNX,
    320 ms chunks, its modified beam search with the LM fused, its endpointer), its pieces, and with
    `heard` its heard partials (`runtime.partials.Partials`: Whisper's decoder reading the segment,
    bundle.json's `partials` settings; else None)."""
    from runtime.bundle import Bundle
    from runtime.pipeline import Pipeline

    pipe = Pipeline(Bundle.load(bundle_dir), threads=1, vad=False, second_pass=heard, heard_partials=heard)
    if heard and pipe.partials is None:
        raise ValueError(f"{bundle_dir}: the bundle has no heard partials (bundle.json `partials`)")
    beam = bundle_search(bundle_dir)["beam"]
    stream = AsrStream(pipe.asr, beam=beam, endpoint=pipe.endpoint, lm=pipe.lm if beam > 1 else None)
    return stream, list(pipe.asr.tokens), pipe.partials


def heard_track(partials, samples: np.ndarray, chunk_samples: int, chunk_frames: int) -> list[list]:
    """A segment's audio (from its first sample) read by the heard partials chunk by chunk as the
    pipeline feeds them: [frame, text] where the partial's text changed, the frame the first of the
    chunk whose audio completed the reading (the pipeline's IQD sees it with that chunk)."""
    from runtime.partials import PartialEvent

    stream = partials.stream()
    out: list[list] = []
    text = ""
    for k, i in enumerate(range(0, len(samples), chunk_samples)):
        for ev in stream.feed_segment(samples[i : i + chunk_samples]):
            if isinstance(ev, PartialEvent):
                text = ev.text
        if (out[-1][1] if out else "") != text:
            out.append([k * chunk_frames, text])
    return out


def stream_utterance(stream: AsrStream, fb: np.ndarray) -> tuple[np.ndarray, list[int], list[int], list[int]]:
    """One utterance's fbank frames (T, n_mels) through the stream chunk by chunk from a fresh
    start, as the runtime decodes it: its encoder output (n, J), the tokens and frames the IQD is
    fed, and the finished transcript's tokens."""
    stream.restart(0)
    stream.feed_fbank(fb)
    chunks = stream.decode() + stream.input_finished()
    tokens, frames = [], []
    for c in chunks:
        t, f = c.emitted()
        tokens += t
        frames += f
    enc = np.concatenate([c.encoder_out for c in chunks]) if chunks else np.zeros((0, 1), np.float32)
    return enc, tokens, frames, list(stream.final_hypothesis().tokens)


def build_bundle_cache(bundle_dir: str | Path, corpus: str | Path, split: str, cache_dir: str | Path,
                       student_dir: str | Path | StudentEncoder | None = None, student_cache: str | Path | None = None,
                       limit: int | None = None, crop: bool = False, progress: bool = True,
                       name: str | None = None, streams: int = 0, heard: bool = False) -> Path:
    """`build_cache` with the bundle's exported transducer (no checkpoint needed): CORPUS/SPLIT's
    first `limit` labelled utterances into CACHE. With `student_dir` (a `heed export student`
    folder), a second cache `student_cache` gets the same rows (label history, fbank, times) with
    the streaming student's states, pooled to the transducer's 40 ms frames
    (`runtime.student_frames`), in place of the transducer's encoder output: two detectors trained
    on the two caches differ only in the encoder they read. `name`: the cached split's name
    (default SPLIT). `streams` > 0: instead, that many continuous recordings of the split's
    utterances after the first `limit` (`cache_stream_split`'s rows, the bundle's endpointer; the
    student restarted at each segment's first sample), as SPLIT-streams. `heard`: each row also
    gets the heard partials' texts over its audio (`heard_track`; a text reader on what Whisper's
    decoder heard, docs/iqd_student.md). Returns the index path."""
    from runtime.student_frames import StudentFrames, fit_frames

    cache_dir = Path(cache_dir)
    search = bundle_search(bundle_dir)
    name = name or (f"{split}-streams" if streams else split)
    index_path = cache_dir / f"{name}.index.jsonl"
    if index_path.exists():
        check_reuse(cache_dir, name, search)
        return index_path
    stream, pieces, partials = bundle_stream(bundle_dir, heard)
    student = None
    if student_dir is not None:
        from runtime.partials import StudentEncoder

        if student_cache is None:
            raise ValueError("a student folder needs a student cache folder")
        enc = student_dir if isinstance(student_dir, StudentEncoder) else StudentEncoder(student_dir)
        student = StudentFrames(enc, np.load(Path(bundle_dir) / "whisper" / "mel_filters.npy"))
        student_dir = getattr(enc, "folder", student_dir)
    asr_file = Path(bundle_dir) / "asr" / "encoder.int8.onnx"
    m = stream.model
    track = (lambda x: heard_track(partials, x, m.chunk_frames * m.frame_samples, m.chunk_frames)) if heard else None
    if streams:
        work = _join(corpus, split, cache_dir, streams, limit or 0, 0, 30.0, 60.0)
        silent = set(stream.model.silent_tokens)
        encs, sencs, fbs, rows = _stream_rows(stream, lambda ids: pieces_text([pieces[t] for t in ids]),
                                              silent, work, split, streams, student, progress, track)
        return _write_both(cache_dir, name, encs, fbs, rows, search, asr_file, pieces, student, student_dir, student_cache, sencs)
    manifest = Path(corpus) / f"{split}.jsonl"
    utts = [u for u in read_manifest(manifest) if u.directed is not None and u.speech_start is not None][:limit]
    cfg = FbankConfig()
    encs, sencs, fbs, rows = [], [], [], []
    enc_off = fb_off = 0
    t0 = time.monotonic()
    for k, u in enumerate(utts):
        samples, sr = read_audio(audio_path(manifest, u))
        samples = samples.mean(axis=1)
        start = 0.0
        if crop:
            start = max(0.0, u.speech_start - 0.5)
            samples = samples[int(start * sr) : int((u.speech_end + 0.3) * sr)]
        samples = np.ascontiguousarray(samples, np.float32)
        fb = fbank(torch.from_numpy(samples), cfg).numpy()
        enc, toks, frs, text_toks = stream_utterance(stream, fb)
        encs.append(enc.astype(np.float16))
        if student is not None:
            sencs.append(fit_frames(student.whole(samples), len(enc)).astype(np.float16))
        fbs.append(fb.astype(np.float16))
        rows.append(CachedUtt(u.id, bool(u.directed), round(u.speech_start - start, 3), round(u.speech_end - start, 3),
                              round(len(fb) * cfg.frame_shift_ms / 1000 + 0.015, 3), enc_off, len(enc), fb_off, len(fb),
                              toks, frs, pieces_text([pieces[t] for t in text_toks]), u.text, u.source, u.voice,
                              track(samples) if track else None))
        enc_off += len(enc)
        fb_off += len(fb)
        if progress and (k + 1) % 200 == 0:
            print(f"  {split}: {k + 1}/{len(utts)} utterances, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return _write_both(cache_dir, name, encs, fbs, rows, search, asr_file, pieces, student, student_dir, student_cache, sencs)


def _write_both(cache_dir: Path, name: str, encs: list, fbs: list, rows: list[CachedUtt], search: dict, asr_file: Path,
                pieces: list[str], student, student_dir, student_cache, sencs: list) -> Path:
    """The transducer's cache split, and with a student the student's (same rows, its frames)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_meta(cache_dir, asr_file, len(pieces), encs[0].shape[1], pieces)
    out = write_split(cache_dir, name, encs, fbs, rows, search)
    if student is not None:
        student_cache = Path(student_cache)
        student_cache.mkdir(parents=True, exist_ok=True)
        write_meta(student_cache, asr_file, len(pieces), student.dim, pieces)
        meta = json.loads((student_cache / "meta.json").read_text())
        (student_cache / "meta.json").write_text(json.dumps({**meta, "student": str(student_dir)}) + "\n")
        write_split(student_cache, name, sencs, fbs, rows, search)
    return out


def _load_asr(asr_ckpt: str | Path, cache_dir: str | Path):
    """The checkpoint as a TorchTransducer, its tokenizer, and CACHE/meta.json written for it."""
    from asr.tokenizer import Tokenizer

    asr = TorchTransducer.from_checkpoint(asr_ckpt)
    tok = Tokenizer(Path(asr_ckpt).parent / "tokens.model")
    write_meta(cache_dir, asr_ckpt, asr.vocab_size, asr.model.cfg.joiner_dim, tok.pieces())
    return asr, tok


def cache_split(asr_ckpt: str | Path, corpus: str | Path, cache_dir: str | Path, split: str,
                limit: int | None = None, crop: bool = False, progress: bool = True,
                search: SearchConfig = SearchConfig()) -> Path:
    """CORPUS/SPLIT.jsonl's utterances through the checkpoint into CACHE (`build_cache`); crop: keep
    0.5 s before and 0.3 s after the speech."""
    asr, tok = _load_asr(asr_ckpt, cache_dir)
    return build_cache(asr, tok.decode, Path(corpus) / f"{split}.jsonl", cache_dir, split, limit,
                       (0.5, 0.3) if crop else None, progress=progress, search=search)


def cache_stream_split(asr_ckpt: str | Path, corpus: str | Path, cache_dir: str | Path, split: str,
                       n_streams: int, skip: int = 0, seed: int = 0, min_s: float = 30.0, max_s: float = 60.0,
                       progress: bool = True, search: SearchConfig = SearchConfig()) -> Path:
    """Continuous recordings of `split` as a cached split `SPLIT-streams` (the `iqd.cache` format),
    one row per matched utterance: its segment's encoder frames, fbank frames and tokens, as the
    runtime's IQD stream sees them (the ASR streamed chunk by chunk with the endpointer,
    `iqd.streams.run_asr`), times relative to the segment's start. Utterances sharing a segment
    share its frames.

    The recordings are joined as `heed corpus streams` joins them, but from `split`'s utterances
    after the first `skip` with directed labels (train: those the utterance cache left out), and
    written under CACHE/streams-src/, never into the corpus. A finished split is reused.
    Returns the index path.
    """
    cache_dir = Path(cache_dir)
    name = f"{split}-streams"
    index_path = cache_dir / f"{name}.index.jsonl"
    if index_path.exists():
        check_reuse(cache_dir, name, search.describe())
        return index_path
    work = _join(corpus, split, cache_dir, n_streams, skip, seed, min_s, max_s)
    asr, tok = _load_asr(asr_ckpt, cache_dir)
    rows = _stream_rows(search.stream(asr), tok.decode, set(asr.silent_tokens), work, split, n_streams, None, progress)
    return write_split(cache_dir, name, rows[0], rows[2], rows[3], search.describe())


def _join(corpus: str | Path, split: str, cache_dir: Path, n_streams: int, skip: int, seed: int,
          min_s: float, max_s: float) -> Path:
    """The split's recordings under CACHE/streams-src (`iqd.streams.join_recordings`) from its
    labelled utterances after the first `skip` (all of them when fewer than two classes are left)."""
    from iqd.streams import join_recordings

    labelled = [u for line in (Path(corpus) / f"{split}.jsonl").read_text().splitlines() if line.strip()
                for u in [json.loads(line)] if u.get("directed") is not None and u.get("speech_start") is not None]
    rest = labelled[skip:]
    if len({u["directed"] for u in rest}) < 2:  # the utterance cache took (nearly) all: reuse them in new contexts
        print(f"  {split}-streams: fewer than two classes after the first {skip} utterances; the recordings use all "
              f"{len(labelled)}", file=sys.stderr)
        rest = labelled
    return join_recordings(corpus, split, rest, cache_dir / "streams-src", n_streams, seed, min_s, max_s)


def _stream_rows(stream: AsrStream, decode_text, silent: set[int], work: Path, split: str, n_streams: int,
                 student=None, progress: bool = True, track=None) -> tuple[list, list, list, list[CachedUtt]]:
    """Every recording of WORK streamed with the endpointer; per matched utterance its segment's
    encoder frames, the student's frames of the segment's audio (a `StudentFrames` restarted at the
    segment's first sample, as the runtime restarts it; empty without `student`), its fbank frames
    and its row."""
    from iqd.streams import decode_recording, labelled_utterances, load_timelines, stream_rows
    from runtime.audio import load_audio
    from runtime.student_frames import fit_frames

    m = stream.model
    fs, sub, look = m.frame_s, m.subsampling, m.step_frames - m.shift_frames  # the fbank frames a segment reads
    hop = m.frame_samples
    encs, sencs, fbs, rows = [], [], [], []
    enc_off = fb_off = 0
    t0 = time.monotonic()
    for k, (wav, tl) in enumerate(load_timelines(work, split)):
        feats, enc, segments = decode_recording(stream, wav, "fed")
        audio = load_audio(wav) if student is not None or track is not None else None
        for seg, u in stream_rows(segments, labelled_utterances(tl), fs, silent):
            off = seg.start * fs
            e = enc[seg.start : seg.end]
            fb = feats[sub * seg.start : sub * seg.end + look]
            encs.append(e.astype(np.float16))
            if student is not None:
                frames = student.whole(np.ascontiguousarray(audio[seg.start * hop : seg.end * hop], np.float32))
                sencs.append(fit_frames(frames, len(e)).astype(np.float16))
            fbs.append(fb.astype(np.float16))
            rows.append(CachedUtt(f"{tl['id']}/{u['utt_id']}", bool(u["directed"]), round(u["speech_start"] - off, 3),
                                  round(u["speech_end"] - off, 3), round((seg.end - seg.start) * fs, 3), enc_off, len(e),
                                  fb_off, len(fb), list(seg.tokens), [f - seg.start for f in seg.frames],
                                  decode_text(seg.transcript), u["text"], u.get("source"), u.get("voice"),
                                  track(np.ascontiguousarray(audio[seg.start * hop : seg.end * hop], np.float32))
                                  if track else None))
            enc_off += len(e)
            fb_off += len(fb)
        if progress:
            print(f"  {split}-streams: {k + 1}/{n_streams} recordings, {len(rows)} utterances, {time.monotonic() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return encs, sencs, fbs, rows


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
    """python -m iqd.replay --asr CKPT --corpus DIR --cache DIR --split S [--limit N] [--crop]
    [--search beam --lm LM.npz], or --bundle DIR [--student DIR --student-cache DIR] in place of
    --asr and the search: one split
    (lets a script fill the splits in parallel processes before `heed train iqd --cache DIR`)."""
    p = argparse.ArgumentParser(prog="python -m iqd.replay", description=main.__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--asr", help="the ASR's checkpoint (torch)")
    src.add_argument("--bundle", help="instead: a bundle's exported transducer and search, as the pipeline runs them "
                                      "(build_bundle_cache; no streams)")
    p.add_argument("--student", help="with --bundle: a `heed export student` folder; its states go to --student-cache")
    p.add_argument("--student-cache", help="with --student: the cache folder of the student's states")
    p.add_argument("--heard", action="store_true", help="with --bundle: also each row's heard partials' texts")
    p.add_argument("--name", help="with --bundle: the cached split's name (default SPLIT, or SPLIT-streams)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--crop", action="store_true", help="keep 0.5 s before and 0.3 s after the speech")
    p.add_argument("--streams", type=int, default=0,
                   help="instead: this many continuous recordings of the split's utterances after the first "
                        "--limit, as the split SPLIT-streams (cache_stream_split)")
    p.add_argument("--threads", type=int, default=1)
    add_search_args(p)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.monotonic()
    if a.bundle:
        if bool(a.student) != bool(a.student_cache):
            p.error("--student and --student-cache go together")
        build_bundle_cache(a.bundle, a.corpus, a.split, a.cache, a.student, a.student_cache, a.limit, a.crop,
                           name=a.name, streams=a.streams, heard=a.heard)
        print(f"cached {a.split} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        return 0
    search = search_from_args(a)
    if a.streams:
        cache_stream_split(a.asr, a.corpus, a.cache, a.split, a.streams, skip=a.limit or 0, search=search)
    else:
        cache_split(a.asr, a.corpus, a.cache, a.split, a.limit, a.crop, search=search)
    print(f"cached {a.split} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
