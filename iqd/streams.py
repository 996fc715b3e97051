"""The detectors on continuous recordings (`heed corpus streams`), as the runtime would run them.

The frozen ASR runs chunk by chunk (`Encoder.step`, as the runtime's encoder graph) with greedy
search (or the runtime's modified beam search with LM fusion, `iqd.cache.SearchConfig`: the label
history is then what the pipeline feeds the IQD after each chunk) and the runtime's endpointer (`runtime.asr.EndpointConfig`, checked after every chunk):
an endpoint closes a segment and the next one starts with a fresh hypothesis. Each detector is
reset at every segment start, as the pipeline resets its IQD stream. A reference utterance of
the timeline is matched to the segment with spoken tokens (not only bare word boundaries) that
overlaps most of its speech; the decider starts where the runtime's would: at the later of that
segment's first spoken token and the frame at which the speech-onset gate
(`runtime.iqd.OnsetGate`, the detector's policy, fresh at the segment's start) opens on the
segment's fbank frames. Without the gate the first spoken token alone may lie long before the
utterance, when the ASR hallucinated characters in the noise of the pause. An utterance no
segment overlaps was missed: it counts as undirected, decided at its speech end + the
endpointer's trailing silence.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.model import Transducer
from asr.tokenizer import BLANK_ID
from iqd.evaluate import TRAILING_SILENCE_S, Track, onset_frame
from runtime.asr import EndpointConfig
from runtime.iqd import FBANK_PER_FRAME, DecisionPolicy


@dataclass
class Segment:
    start: int  # first encoder frame
    end: int  # encoder frame count at the endpoint (exclusive)
    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)  # absolute encoder frame of each token
    text_tokens: list[int] | None = None  # the finished transcript (beam search: re-ranked); None: `tokens`

    @property
    def transcript(self) -> list[int]:
        return self.tokens if self.text_tokens is None else self.text_tokens


@torch.no_grad()
def run_asr(model: Transducer, feats: torch.Tensor, endpoint: EndpointConfig = EndpointConfig(),
            frame_s: float = 0.04, beam=None) -> tuple[np.ndarray, list[Segment]]:
    """Stream fbank frames (T, n_mels) through the encoder chunk by chunk with greedy search (or
    `beam`, an `iqd.cache.BeamStream`: the runtime's beam search) and endpointing.

    Returns the projected encoder output (T', J) and the segments (those with tokens and the rest).
    """
    if beam is not None:
        return _run_asr_beam(model, feats, beam, endpoint, frame_s)
    cfg = model.cfg
    shift, step = cfg.chunk_input_frames, cfg.step_input_frames
    state = model.encoder.init_state(1)
    ctx = cfg.context_size
    outs, segments = [], []
    seg = Segment(0, 0)
    hist = [BLANK_ID] * ctx
    dec = model.decoder(torch.tensor([hist[-ctx:]]))[:, 0]
    n = 0
    for k in range(0, max(0, len(feats) - step) // shift + 1):
        x = feats[k * shift : k * shift + step][None]
        y, state = model.encoder.step(x, state)
        enc = model.encoder_proj(y)[0]  # (C, J)
        outs.append(enc.numpy())
        for t in range(len(enc)):
            for _ in range(3):
                best = int(model.joiner(enc[t : t + 1], dec).argmax(-1))
                if best == BLANK_ID:
                    break
                seg.tokens.append(best)
                seg.frames.append(n + t)
                hist.append(best)
                dec = model.decoder(torch.tensor([hist[-ctx:]]))[:, 0]
        n += len(enc)
        last = (seg.frames[-1] + 1 - seg.start) * frame_s * 1000 if seg.frames else None
        if endpoint.reached((n - seg.start) * frame_s * 1000, last):
            seg.end = n
            segments.append(seg)
            seg = Segment(n, n)
            hist = [BLANK_ID] * ctx
            dec = model.decoder(torch.tensor([hist[-ctx:]]))[:, 0]
    seg.end = n
    segments.append(seg)
    return np.concatenate(outs) if outs else np.zeros((0, cfg.joiner_dim), np.float32), segments


@torch.no_grad()
def _run_asr_beam(model: Transducer, feats: torch.Tensor, beam, endpoint: EndpointConfig,
                  frame_s: float) -> tuple[np.ndarray, list[Segment]]:
    """`run_asr` with the runtime's modified beam search: after each chunk the segment gets the
    tokens the best hypothesis emitted at the chunk's frames (what `runtime.pipeline` feeds the
    IQD); the endpointer reads the best hypothesis's last token, as `runtime.asr.AsrStream`."""
    cfg = model.cfg
    shift, step = cfg.chunk_input_frames, cfg.step_input_frames
    state = model.encoder.init_state(1)
    outs, segments = [], []
    seg = Segment(0, 0)
    beam.reset()
    n = 0
    for k in range(0, max(0, len(feats) - step) // shift + 1):
        x = feats[k * shift : k * shift + step][None]
        y, state = model.encoder.step(x, state)
        enc = model.encoder_proj(y)[0].numpy()  # (C, J)
        outs.append(enc)
        toks, frs = beam.chunk(enc, n)
        seg.tokens += toks
        seg.frames += frs
        n += len(enc)
        last = beam.best.last_emit_frame
        last_ms = None if last < seg.start else (last + 1 - seg.start) * frame_s * 1000
        if endpoint.reached((n - seg.start) * frame_s * 1000, last_ms):
            seg.end = n
            segments.append(_finish(seg, beam))
            seg = Segment(n, n)
            beam.reset()
    seg.end = n
    segments.append(_finish(seg, beam))
    return np.concatenate(outs) if outs else np.zeros((0, cfg.joiner_dim), np.float32), segments


def _finish(seg: Segment, beam) -> Segment:
    """The segment's transcript (the finished beam, re-ranked); history "final": its tokens and
    frames replace the ones fed chunk by chunk."""
    best = beam.final()
    seg.text_tokens = list(best.tokens)
    if beam.history == "final":
        seg.tokens, seg.frames = list(best.tokens), list(best.frames)
    return seg


def spoken_frames(seg: Segment, silent: set[int] = frozenset()) -> list[int]:
    """Frames of the segment's tokens that are not silent (bare word boundaries)."""
    return [f for f, t in zip(seg.frames, seg.tokens) if t not in silent]


def match(utts: list[dict[str, Any]], segments: list[Segment], frame_s: float,
          silent: set[int] = frozenset()) -> list[Segment | None]:
    """The segment of each timeline utterance: the one (with spoken tokens) that overlaps most of its
    speech. Several utterances may share a segment (the endpointer did not close it between them):
    they then share its one decision, as they would in the runtime."""
    out = []
    for u in utts:
        best, best_overlap = None, 0.0
        for s in segments:
            if not spoken_frames(s, silent):
                continue
            overlap = min(s.end * frame_s, u["speech_end"]) - max(s.start * frame_s, u["speech_start"])
            if overlap > best_overlap:
                best, best_overlap = s, overlap
        out.append(best)
    return out


def segment_track(p: np.ndarray, seg: Segment | None, utt: dict[str, Any], frame_s: float,
                  silent: set[int] = frozenset(), feats: np.ndarray | None = None,
                  policy: DecisionPolicy = DecisionPolicy()) -> Track:
    """A track in segment time: p covers the segment's frames; times relative to its start.
    feats: the recording's fbank frames (T, n_mels), for the policy's speech-onset gate (None: no gate)."""
    if seg is None:  # missed: no frames, undirected at speech end + trailing silence
        return Track(np.zeros(0), 0, utt["speech_end"] + TRAILING_SILENCE_S, utt["speech_start"], bool(utt["directed"]), frame_s)
    off = seg.start * frame_s
    endpoint = (seg.frames[-1] + 1) * frame_s + TRAILING_SILENCE_S
    onset = spoken_frames(seg, silent)[0] - seg.start
    if feats is not None:
        onset = onset_frame(onset, np.asarray(feats[FBANK_PER_FRAME * seg.start : FBANK_PER_FRAME * seg.end]),
                            seg.end - seg.start, policy, frame_s)
    return Track(p, onset, endpoint - off, utt["speech_start"] - off, bool(utt["directed"]), frame_s)


def load_timelines(corpus: str | Path, split: str = "test") -> list[tuple[Path, dict[str, Any]]]:
    """(wav path, timeline) of every recording `heed corpus streams` wrote for the split."""
    root = Path(corpus) / "streams"
    index = root / f"{split}.jsonl"
    if not index.exists():
        raise FileNotFoundError(f"{index} not found: run heed corpus streams {corpus} --split {split} first")
    out = []
    for line in index.read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            tl = json.loads((root / e["timeline"]).read_text())
            out.append((root / e["audio"], tl))
    return out


def labelled_utterances(timeline: dict[str, Any]) -> list[dict[str, Any]]:
    """The utterances of a recording's timeline that are scored: those with a directed label and a speech start."""
    return [s for s in timeline["segments"] if s.get("speech_start") is not None and s.get("directed") is not None]


def decode_recording(model: Transducer, wav: str | Path, beam=None) -> tuple[torch.Tensor, np.ndarray, list[Segment]]:
    """fbank (T, n_mels), encoder output and endpointed segments (`run_asr`; beam search with
    `beam`, an `iqd.cache.BeamStream`) of one recording."""
    from asr.features import fbank
    from runtime.audio import load_audio

    feats = fbank(torch.from_numpy(load_audio(wav)))
    enc, segments = run_asr(model, feats, beam=beam)
    return feats, enc, segments


def join_recordings(corpus: str | Path, split: str, utts: list[dict[str, Any]], work: str | Path, n_streams: int,
                    seed: int = 0, min_s: float = 30.0, max_s: float = 60.0) -> Path:
    """Continuous recordings of `utts` (manifest rows of `corpus`'s `split`), joined as `heed corpus
    streams` joins them, under WORK (never into the corpus): a manifest WORK/SPLIT.jsonl whose audio
    paths point at the corpus's files, then `corpus.streams.build_streams`. Returns WORK."""
    from corpus.streams import build_streams

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rows = [{**u, "audio": str((Path(corpus) / u["audio"]).resolve())} for u in utts]
    (work / f"{split}.jsonl").write_text("".join(json.dumps(u) + "\n" for u in rows))
    build_streams(work, split, n_streams, seed, min_s, max_s)
    return work


def stream_rows(segments: list[Segment], utts: list[dict[str, Any]], frame_s: float,
                silent: set[int] = frozenset()) -> list[tuple[Segment, dict[str, Any]]]:
    """(segment, utterance) of every timeline utterance that a segment with spoken tokens overlaps
    (`match`); missed utterances have no frames and are left out."""
    return [(s, u) for u, s in zip(utts, match(utts, segments, frame_s, silent)) if s is not None]


def cache_stream_split(asr_ckpt: str | Path, corpus: str | Path, cache_dir: str | Path, split: str,
                       n_streams: int, skip: int = 0, seed: int = 0, min_s: float = 30.0, max_s: float = 60.0,
                       progress: bool = True, search=None) -> Path:
    """Continuous recordings of `split` as a cached split `SPLIT-streams` (the `iqd.cache` format),
    one row per matched utterance: its segment's encoder frames, fbank frames and tokens, as the
    runtime's IQD stream sees them (the ASR streamed chunk by chunk with the endpointer, `run_asr`),
    times relative to the segment's start. Utterances sharing a segment share its frames.

    The recordings are joined as `heed corpus streams` joins them, but from `split`'s utterances
    after the first `skip` with directed labels (train: those the utterance cache left out), and
    written under CACHE/streams-src/, never into the corpus. A finished split is reused.
    Returns the index path.
    """
    import time

    from asr.export import load_checkpoint
    from asr.tokenizer import Tokenizer
    from iqd.cache import CachedUtt, SearchConfig, check_reuse, frame_seconds, silent_tokens, write_meta, write_split

    search = search or SearchConfig()
    cache_dir = Path(cache_dir)
    name = f"{split}-streams"
    index_path = cache_dir / f"{name}.index.jsonl"
    if index_path.exists():
        check_reuse(cache_dir, name, search)
        return index_path
    labelled = [u for line in (Path(corpus) / f"{split}.jsonl").read_text().splitlines() if line.strip()
                for u in [json.loads(line)] if u.get("directed") is not None and u.get("speech_start") is not None]
    rest = labelled[skip:]
    if len({u["directed"] for u in rest}) < 2:  # the utterance cache took (nearly) all: reuse them in new contexts
        print(f"  {name}: fewer than two classes after the first {skip} utterances; the recordings use all "
              f"{len(labelled)}", file=sys.stderr)
        rest = labelled
    work = join_recordings(corpus, split, rest, cache_dir / "streams-src", n_streams, seed, min_s, max_s)
    asr, _ = load_checkpoint(asr_ckpt)
    tok = Tokenizer(Path(asr_ckpt).parent / "tokens.model")
    write_meta(cache_dir, asr_ckpt, asr, tok)
    beam = search.stream(asr)
    silent = set(silent_tokens(tok.pieces()))
    fs = frame_seconds()
    encs, fbs, rows = [], [], []
    enc_off = fb_off = 0
    t0 = time.monotonic()
    for k, (wav, tl) in enumerate(load_timelines(work, split)):
        feats, enc, segments = decode_recording(asr, wav, beam)
        for seg, u in stream_rows(segments, labelled_utterances(tl), fs, silent):
            off = seg.start * fs
            e = enc[seg.start : seg.end]
            fb = feats[FBANK_PER_FRAME * seg.start : FBANK_PER_FRAME * seg.end + 3].numpy()
            encs.append(e.astype(np.float16))
            fbs.append(fb.astype(np.float16))
            rows.append(CachedUtt(f"{tl['id']}/{u['utt_id']}", bool(u["directed"]), round(u["speech_start"] - off, 3),
                                  round(u["speech_end"] - off, 3), round((seg.end - seg.start) * fs, 3), enc_off, len(e),
                                  fb_off, len(fb), list(seg.tokens), [f - seg.start for f in seg.frames],
                                  tok.decode(seg.transcript), u["text"], u.get("source"), u.get("voice")))
            enc_off += len(e)
            fb_off += len(fb)
        if progress:
            print(f"  {name}: {k + 1}/{n_streams} recordings, {len(rows)} utterances, {time.monotonic() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return write_split(cache_dir, name, encs, fbs, rows, search)
