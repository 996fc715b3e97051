"""The detectors on continuous recordings (`heed corpus streams`), as the runtime would run them.

The frozen ASR runs through the runtime's own stream (`runtime.asr.AsrStream` on the torch
backend, `asr.backend.TorchTransducer`): chunk by chunk, the search of `iqd.replay.SearchConfig`
(greedy, or the modified beam search with LM fusion: the label history is then what the pipeline
feeds the IQD after each chunk) and the endpointer (`runtime.endpoint.EndpointConfig`, checked
after every chunk): an endpoint closes a segment and the next one starts with a fresh hypothesis.
Each detector is reset at every segment start, as the pipeline resets its IQD stream. A
reference utterance of the timeline is matched to the segment with spoken tokens (not only bare
word boundaries) that overlaps most of its speech; the decider starts where the runtime's would:
at the later of that segment's first spoken token and the frame at which the speech-onset gate
(`runtime.iqd_policy.OnsetGate`, the detector's policy, fresh at the segment's start) opens on the
segment's fbank frames. Without the gate the first spoken token alone may lie long before the
utterance, when the ASR hallucinated characters in the noise of the pause. An utterance no
segment overlaps was missed: it counts as undirected, decided at its speech end + the
endpointer's trailing silence.

Unlike the shipped pipeline, the recordings are decoded without the voice-activity gate
(`runtime/vad.py`), and the tail after the last whole chunk is not flushed: the detectors were
trained and chosen on this view (docs/iqd.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr.model import SUBSAMPLING
from iqd.evaluate import TRAILING_SILENCE_S, Track, onset_frame
from runtime.asr import AsrStream
from runtime.iqd_policy import DecisionPolicy


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


def run_asr(stream: AsrStream, feats: np.ndarray, history: str = "fed") -> tuple[np.ndarray, list[Segment]]:
    """fbank frames (T, n_mels) of a recording through `stream` (restarted first), chunk by chunk
    with endpointing. history "fed": each segment's tokens are those the pipeline feeds its IQD
    after each chunk; "final": those of the finished segment's best hypothesis.

    Returns the projected encoder output (T', J) and the segments (those with tokens and the rest).
    """
    stream.restart(0)
    stream.feed_fbank(feats)
    outs, segments, seg = [], [], Segment(0, 0)
    while (chunk := stream.decode_chunk()) is not None:
        outs.append(chunk.encoder_out)
        tokens, frames = chunk.emitted()
        seg.tokens += tokens
        seg.frames += frames
        if chunk.endpoint:
            segments.append(_finish(seg, stream, history))
            stream.new_segment()
            seg = Segment(stream.segment_start, stream.segment_start)
    segments.append(_finish(seg, stream, history))
    enc = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    return enc, segments


def _finish(seg: Segment, stream: AsrStream, history: str) -> Segment:
    """The segment at its end: its transcript (the finished beam, re-ranked); history "final": its
    tokens and frames replace the ones fed chunk by chunk."""
    seg.end = stream.n_enc_frames
    best = stream.final_hypothesis()
    seg.text_tokens = list(best.tokens)
    if history == "final":
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
        onset = onset_frame(onset, np.asarray(feats[SUBSAMPLING * seg.start : SUBSAMPLING * seg.end]),
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


def decode_recording(stream: AsrStream, wav: str | Path, history: str = "fed") -> tuple[np.ndarray, np.ndarray, list[Segment]]:
    """fbank (T, n_mels) (training's torchaudio features, `asr.features.fbank`), encoder output and
    endpointed segments (`run_asr`) of one recording."""
    import torch

    from asr.features import fbank
    from runtime.audio import load_audio

    feats = fbank(torch.from_numpy(load_audio(wav))).numpy()
    enc, segments = run_asr(stream, feats, history)
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


def segment_posteriors(model, feats: np.ndarray, enc: np.ndarray, seg: Segment) -> np.ndarray:
    """A detector's P(directed) over a segment's frames, reset at its start as the pipeline resets its
    IQD: the E2E joint network (`iqd.model.E2E_MODELS`) on the segment's encoder frames and label
    history, the independent detector on the fbank frames they read. feats: the recording's fbank
    (T, n_mels); enc: its encoder output (T', J) -> (seg.end - seg.start,)."""
    import torch

    from asr.model import SUBSAMPLING, SUBSAMPLING_PAD
    from iqd.model import E2E_MODELS

    with torch.no_grad():
        if isinstance(model, E2E_MODELS):
            e = torch.from_numpy(enc[seg.start : seg.end])[None]
            frames = torch.tensor([[f - seg.start for f in seg.frames]])
            return torch.sigmoid(model(e, torch.tensor([seg.tokens]), frames, torch.tensor([len(seg.tokens)])))[0].numpy()
        x = torch.from_numpy(feats[SUBSAMPLING * seg.start : SUBSAMPLING * seg.end + SUBSAMPLING_PAD])[None]
        return torch.sigmoid(model(x))[0].numpy()
