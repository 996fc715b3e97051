"""The streaming student's final states as 40 ms frames: what an IQD reads in place of the transducer's encoder.

The student (`asr/student.py`, exported by `heed export student`) steps 320 ms chunks of Whisper's
log-mel; each step gives 16 states of 20 ms (its convolution's stride 2). Two neighbours are
averaged into one 40 ms frame, so a chunk gives 8 frames, the transducer's chunk and frame
(`runtime.asr.TransducerModel.frame_s`): an IQD trained on these frames keeps the decision
policy's frame clock, the onset gate, and the label history's frame indices of the transducer's
search. Positions restart with each segment (`reset`), as the student was trained; a segment is
cut before Whisper's 30 s (`n_audio_ctx` states), after which the frames are zero.

numpy and onnxruntime only.
"""
from __future__ import annotations

import numpy as np

from runtime.partials import MelStream, StudentEncoder

POOL = 2  # student states (20 ms) per IQD frame (40 ms)


class StudentFrames:
    """One stream's student states, pooled to 40 ms frames, as audio arrives."""

    def __init__(self, encoder: StudentEncoder, filters: np.ndarray) -> None:
        self.encoder = encoder
        self.chunk_mel = 2 * encoder.chunk_frames
        self.mel = MelStream(filters)
        self.reset()

    @property
    def dim(self) -> int:
        return self.encoder.n_state

    def reset(self) -> None:
        """A new segment: positions, the mel floor and the attention caches start afresh."""
        self.mel.reset()
        self.state = self.encoder.init_state()
        self.pending = np.zeros((self.encoder.n_mels, 0), np.float32)
        self.carry = np.zeros((0, self.encoder.n_state), np.float32)  # a state waiting for its pair
        self.states = 0  # student states of the segment so far

    def _step(self, mel: np.ndarray) -> np.ndarray:
        room = self.encoder.n_audio_ctx - self.states
        if room <= 0:  # past Whisper's 30 s: nothing more to say
            return np.zeros((mel.shape[1] // 2, self.encoder.n_state), np.float32)
        mel = mel[:, : 2 * room]
        _, states, self.state = self.encoder.step(mel, self.state)
        self.states += states.shape[1]
        return states[0]

    def _pool(self, states: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.concatenate([self.carry, states])
        n = len(x) // POOL
        self.carry = x[n * POOL :]
        out = x[: n * POOL].reshape(n, POOL, x.shape[1]).mean(1)
        if last and len(self.carry):
            out = np.concatenate([out, self.carry])
            self.carry = self.carry[:0]
        return out.astype(np.float32)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """More of the segment -> the 40 ms frames (k, D) its completed chunks gave."""
        self.pending = np.concatenate([self.pending, self.mel.accept(samples)], axis=1)
        out = []
        while self.pending.shape[1] >= self.chunk_mel:
            out.append(self._step(self.pending[:, : self.chunk_mel]))
            self.pending = self.pending[:, self.chunk_mel :]
        return self._pool(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32))

    def finish(self) -> np.ndarray:
        """The segment's end: the frames of its last, partial chunk (the audio's end padded with zeros)."""
        rest = np.concatenate([self.pending, self.mel.flush()], axis=1)
        rest = rest[:, : rest.shape[1] // 2 * 2]
        out = [self._step(rest[:, i : i + self.chunk_mel]) for i in range(0, rest.shape[1], self.chunk_mel)]
        self.pending = rest[:, :0]
        return self._pool(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32), last=True)

    def whole(self, samples: np.ndarray) -> np.ndarray:
        """A whole segment from a fresh state: `accept` then `finish` (caches and tests)."""
        self.reset()
        return np.concatenate([self.accept(samples), self.finish()])


def fit_frames(frames: np.ndarray, n: int) -> np.ndarray:
    """frames (k, D) cut or extended (repeating the last, zeros if none) to n rows: the student's
    frames beside the transducer's n frames of the same audio (they differ by the front ends' edges)."""
    if len(frames) >= n:
        return frames[:n]
    pad = frames[-1:] if len(frames) else np.zeros((1, frames.shape[1]), frames.dtype)
    return np.concatenate([frames, np.repeat(pad, n - len(frames), axis=0)])
