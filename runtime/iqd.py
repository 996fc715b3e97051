"""Intended-query detection in the runtime: the exported IQ joint network and one stream of it.

    from runtime.iqd import IqdModel
    iqd = IqdModel.from_dir("exp/iqd-e2e-export")        # shared, immutable
    stream = iqd.create_stream(asr_model)                # one per ASR segment (runtime.asr.TransducerModel)
    stream.accept(chunk)                                 # each decoded chunk (runtime.asr.ChunkResult)
    stream.force(t_s)                                    # at the endpoint
    stream.result()  # {"probability": 0.94, "decision": "directed", "decided_at": 0.96}

The graph (`iqd.onnx`, see `iqd/export.py`) is one encoder frame per call with explicit state
(`IqdState`): `encoder_out` (N, J) the ASR's projected encoder frame, `tokens` (N, K) int64 the
tokens the search emitted at that frame (0 = none), `token_state` and `frame_state` (1, N, H) the
GRU states -> `probability` (N,) P(directed) and the next states. Sizes come from iqd.json.

`IqdStream` steps the graph over each chunk's frames, finds the speech onset (a spoken token and
the speech-onset gate, `runtime/iqd_policy.py`), fuses the posterior with the label history read as
text when the detector has a reader (`runtime/iqd_text.py`) and runs the decision state machine
(`runtime.iqd_policy.Decider`). numpy only: no torch.

A detector trained on the streaming student's states (docs/iqd_student.md) has iqd.json's
`encoder` entry `{"kind": "student", "dir": "student"}`: the folder holds the student's step graph
(`heed export student`: student.json, its int8 graph) and Whisper's `mel_filters.npy`. Its stream
then hears the segment's audio itself (`accept_audio`, from the segment's first sample; `finish_audio`
at the end of speech) and reads each chunk's frames from the student (`runtime/student_frames.py`)
in place of the transducer's encoder output (or, with `"with_transducer": true` and its
`transducer_dim`, beside it: the transducer's frame first); the label history and the frame
clock stay the transducer's.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from runtime.features import FbankConfig
from runtime.iqd_policy import Decider, DecisionPolicy, OnsetGate, band_bins, frame_energy_db
from runtime.iqd_text import HistoryText, pieces_text
from runtime.student_frames import StudentFrames, fit_frames

if TYPE_CHECKING:
    from runtime.asr import ChunkResult, TransducerModel

SCHEMA_VERSION = 1


class IqdState(NamedTuple):
    """The joint network's step state, an array per field (numpy here, torch in iqd/model.py); the
    names are the graph's input names, its outputs `next_<name>` (`IQD_OUTPUTS`).

    token_state: (1, N, token_hidden) the GRU over emitted tokens; frame_state: (1, N, frame_hidden).
    """

    token_state: Any
    frame_state: Any


IQD_INPUTS = ("encoder_out", "tokens", *IqdState._fields)
IQD_OUTPUTS = ("probability", *(f"next_{f}" for f in IqdState._fields))


class IqdModel:
    """The exported IQ joint network (one ONNX session) and its policy; shared by all streams."""

    def __init__(self, folder: str | Path, precision: str = "int8", threads: int = 1) -> None:
        """A missing or corrupt file is a `runtime.bundle.BundleError` naming it."""
        from runtime.bundle import onnx_session, read_json

        self.folder = Path(folder)
        f = self.folder / "iqd.json"
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: export a detector with `heed export iqd`")
        m = read_json(f)
        if m.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{f}: schema_version {m.get('schema_version')}, this runtime reads {SCHEMA_VERSION}")
        if precision not in m["files"]:
            precision = "fp32"
        self.manifest = m
        self.policy = DecisionPolicy.from_dict(m["policy"])
        self.n_token_slots: int = m["n_token_slots"]
        if set(m["state"]) != set(IqdState._fields):
            raise ValueError(f"{f}: state {sorted(m['state'])}, this runtime steps {list(IqdState._fields)}")
        self.state_shapes: dict[str, list[int]] = m["state"]
        self.enc_dim: int = m["enc_dim"]
        self.text: HistoryText | None = None
        self.text_reads = "pieces"  # the label history's pieces, or "heard": the heard partials' words
        if m.get("text"):
            self.text = HistoryText.from_file(self.folder / m["text"]["file"], m["text"]["weight"])
            self.text_reads = m["text"].get("reads", "pieces")
            if self.text_reads not in ("pieces", "heard"):
                raise ValueError(f"{f}: text.reads is {self.text_reads!r}: 'pieces' or 'heard'")
        self.session = onnx_session(self.folder / m["files"][precision], threads)
        self.student: Any = None  # runtime.partials.StudentEncoder when the detector hears the student
        self.mel_filters: np.ndarray | None = None
        encoder = m.get("encoder", {"kind": "transducer"})
        # with_transducer: the joint network reads the transducer's frame and the student's side by side
        self.transducer_dim = int(encoder.get("transducer_dim", 0)) if encoder.get("with_transducer") else 0
        if encoder.get("kind") == "student":
            self._load_student(f, self.folder / str(encoder.get("dir", "student")), threads)
        elif encoder.get("kind") != "transducer":
            raise ValueError(f"{f}: encoder kind {encoder.get('kind')!r}: 'transducer' or 'student'")

    def _load_student(self, f: Path, folder: Path, threads: int, session: Any = None) -> None:
        """The student beside the detector (iqd.json's `encoder`); its width, filters and graph checked."""
        import json

        from runtime.partials import StudentEncoder

        try:
            n_state = int(json.loads((folder / "student.json").read_text())["n_state"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{folder / 'student.json'}: missing or unreadable ({e}); iqd.json names a student "
                             f"folder for the detector") from None
        if n_state + self.transducer_dim != self.enc_dim:
            gives = f"{n_state}" + (f" beside the transducer's {self.transducer_dim}" if self.transducer_dim else "")
            raise ValueError(f"{f}: the joint network reads {self.enc_dim}-wide frames, the student gives {gives}")
        self.student = StudentEncoder(folder, threads=threads, session=session)
        filters = folder / "mel_filters.npy"
        try:
            self.mel_filters = np.load(filters)
        except (OSError, ValueError) as e:
            raise ValueError(f"{filters}: unreadable mel filters ({e})") from None
        if self.mel_filters.shape != (self.student.n_mels, 201):
            raise ValueError(f"{filters}: shape {self.mel_filters.shape}, the student reads {self.student.n_mels} mel bins")

    @classmethod
    def from_dir(cls, folder: str | Path, precision: str = "int8", threads: int = 1) -> "IqdModel":
        return cls(folder, precision, threads)

    def init_state(self) -> IqdState:
        return IqdState(*(np.zeros(self.state_shapes[name], np.float32) for name in IqdState._fields))

    def step(self, enc: np.ndarray, tokens: Sequence[int], state: IqdState) -> tuple[float, IqdState]:
        """One encoder frame enc (J,) and the tokens emitted at it -> (P(directed), next state)."""
        tok = np.zeros((1, self.n_token_slots), np.int64)
        kept = list(tokens)[-self.n_token_slots :]  # more than K tokens on one frame: the last K
        tok[0, : len(kept)] = kept
        p, *next_state = self.session.run(list(IQD_OUTPUTS), {"encoder_out": enc[None].astype(np.float32, copy=False),
                                                              "tokens": tok, **state._asdict()})
        return float(p[0]), IqdState(*next_state)

    def create_stream(self, asr: "TransducerModel", policy: DecisionPolicy | None = None) -> "IqdStream":
        """A stream over the chunks of `asr`: its frame duration, its silent tokens (a bare word
        boundary, which a character model may emit in silence, does not mark the speech onset),
        its features (the gate's bands) and its token pieces (the history read as text)."""
        return IqdStream(self, asr.frame_s, policy or self.policy, asr.silent_tokens, asr.fbank, asr.tokens)


class IqdStream:
    """One segment: the network's state, the onset (spoken token and gate) and the decider."""

    def __init__(self, model: IqdModel, frame_s: float, policy: DecisionPolicy,
                 silent_tokens: frozenset[int] = frozenset(), fbank_cfg: FbankConfig = FbankConfig(),
                 pieces: Sequence[str] | None = None) -> None:
        if model.text is not None and pieces is None:
            raise ValueError(f"{model.folder}: this detector reads the label history as text; "
                             "its stream needs the ASR's token pieces (pieces=)")
        self.model, self.frame_s, self.silent = model, frame_s, frozenset(silent_tokens)
        self.pieces = list(pieces) if pieces is not None else None
        self.decider = Decider(policy, frame_s * 1000)
        self.gate = OnsetGate(policy, frame_s * 1000)
        self.n_band_bins = band_bins(policy.onset_band_hz, fbank_cfg)
        self.student = None
        if getattr(model, "student", None) is not None:  # a stand-in model may predate the student
            self.student = StudentFrames(model.student, model.mel_filters)
        self.reset()

    def reset(self) -> None:
        """A new segment: the network's state, the text read, the gate (noise floor included) and the decider."""
        self.state = self.model.init_state()
        self.decider.reset()
        self.gate.reset()
        self.probability: float | None = None  # the latest posterior (fused with the text's when read)
        self.text: list[str] = []  # pieces emitted from the onset on (HistoryText)
        self.heard_text = ""  # the heard partial last read (a detector reading the heard partials)
        self.text_logit = 0.0
        self.spoken = False  # a spoken token has been emitted in the segment
        self.onset = False  # spoken and the gate open: the decider runs
        self.speech_frame: int | None = None  # the VAD's speech start, when a VAD gates the stream
        if self.student is not None:
            self.student.reset()
            self.heard = np.zeros((0, self.student.dim), np.float32)  # the student's frames not yet read

    @property
    def hears_audio(self) -> bool:
        """Whether the stream needs the segment's audio (`accept_audio`): a detector on the student."""
        return self.student is not None

    def accept_audio(self, samples: np.ndarray) -> None:
        """The segment's audio, from its first sample (the transducer's first frame of the segment) on;
        nothing for a detector on the transducer's encoder."""
        if self.student is not None and len(samples):
            self.heard = np.concatenate([self.heard, self.student.accept(samples)])

    def finish_audio(self) -> None:
        """The segment's speech ended (its audio's end padded as the student was trained): its last frames."""
        if self.student is not None:
            self.heard = np.concatenate([self.heard, self.student.finish()])

    def speech_from(self, frame: int) -> None:
        """The voice-activity detector's speech start (stream encoder frame): the onset's gate is
        then open from that frame on, in place of the energy gate (`OnsetGate`). Set per segment."""
        self.speech_frame = int(frame)

    def accept(self, chunk: "ChunkResult", heard_text: str | None = None) -> None:
        """One decoded chunk of the ASR: its encoder frames (frame i at stream frame
        chunk.first_frame + i), the tokens the search emitted at each and its fbank frames (the
        gate's; required unless the policy has no gate, onset_min_ms = 0, or `speech_from` set the
        VAD's start). heard_text: the segment's heard partial as it stands (a detector whose text
        reader reads it; None: it reads the label history's pieces instead)."""
        enc, first_frame, fbank = chunk.encoder_out, chunk.first_frame, chunk.fbank
        if self.student is not None:  # the student's frames of the same audio (ready before the transducer's)
            heard, self.heard = fit_frames(self.heard[: len(enc)], len(enc)), self.heard[len(enc) :]
            if self.model.transducer_dim:
                if enc.shape[1] != self.model.transducer_dim:
                    raise ValueError(f"{self.model.folder}: trained beside a {self.model.transducer_dim}-wide transducer "
                                     f"encoder, this ASR's is {enc.shape[1]}")
                heard = np.concatenate([enc, heard], axis=1)
            enc = heard
        energy_gate = self.gate.enabled and self.speech_frame is None
        if energy_gate and fbank is None:
            raise ValueError("the policy's speech-onset gate needs the chunk's fbank frames")
        energy = (frame_energy_db(fbank, len(fbank) // max(1, len(enc)), len(enc), self.n_band_bins)
                  if energy_gate else None)
        for i in range(len(enc)):
            tokens = chunk.tokens_by_frame[i]
            self.probability, self.state = self.model.step(enc[i], tokens, self.state)
            self.spoken = self.spoken or any(t not in self.silent for t in tokens)
            if energy is not None:
                self.gate.step(energy[i], first_frame + i)
            gate_open = self.gate.open if self.speech_frame is None else first_frame + i >= self.speech_frame
            self.onset = self.spoken and gate_open
            if self.onset and self.model.text is not None:
                if heard_text is not None and getattr(self.model, "text_reads", "pieces") == "heard":
                    if heard_text != self.heard_text:
                        self.heard_text, self.text_logit = heard_text, self.model.text.logit(heard_text)
                elif tokens:
                    self.text += [self.pieces[t] for t in tokens]
                    self.text_logit = self.model.text.logit(pieces_text(self.text))
                self.probability = self.model.text.fuse(self.probability, self.text_logit)
            if self.onset:
                self.decider.step(self.probability, round((first_frame + i + 1) * self.frame_s, 3))

    def force(self, t_s: float) -> None:
        self.decider.force(round(t_s, 3))

    def result(self) -> dict[str, Any]:
        d = self.decider
        p = d.smoothed if d.smoothed is not None else (self.probability if self.probability is not None else 0.0)
        return {"probability": round(float(p), 3), "decision": d.decision, "decided_at": d.decided_at}
