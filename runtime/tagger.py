"""Streaming slot tagging on partial hypotheses (HEAR), with onnxruntime and numpy only.

    from runtime.tagger import StreamingTagger, slot_spans
    tagger = StreamingTagger.from_dir("exp/tagger-hybrid/export")   # shared, immutable
    stream = tagger.create_stream()                                  # one per utterance / ASR stream
    tags, intent = stream.update(["wake", "me", "up"])               # a partial hypothesis
    tags, intent = stream.update(["wake", "me", "up", "at", "seven"], final=True)
    slot_spans(words, tags)  # [{"slot": "time", "value": "seven", "start_word": 4, "end_word": 5}]

`update` takes the whole current word sequence each time (as an ASR reports its partials) and
returns one BIO tag per word and the intent as {"label", "probability"} (None before any word).
What it does per call:

1. finds the first word that differs from the previous call's words and rolls back to it: the
   unidirectional LSTM state after every word is kept, so the revised words and everything after
   them are re-stepped from the state before the first changed word; labels of the unchanged
   words stay as they were shown;
2. encodes each new word once (token graph) and steps the unidirectional layers once per new word
   (uni_step graph), which labels the new word and gives the ARM's restart probability;
3. restarts (bidirectional graph over the unidirectional outputs of the whole current prefix,
   relabelling every word and the intent) when the policy says so: "arm" (HEAR) when the ARM's
   probability for any new word passes `arm_threshold`; "every" at each change; "every_k" every
   k new words; "never". With `final_restart`, the final hypothesis is always relabelled by a
   restart, so final results are the bidirectional model's.

Decoding (`decode` in tagger.json, "argmax" for exports that predate it): "argmax" takes each
word's best tag on its own; "bio" keeps the labels valid BIO (an I-x only after B-x or I-x): a
restart's labels are the best valid sequence under the tag log-probabilities (`bio_viterbi`), and
a new word's unidirectional label is its best tag that may follow the label shown before it.

A bi-only export always restarts (it has no unidirectional path); a uni-only one never does.
`stream.stats` counts the work done (words encoded, letters, unidirectional steps, restarts and
the words they covered, rollbacks): the benchmark turns it into FLOPs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

SCHEMA_VERSION = 1
POLICIES = ("arm", "every", "every_k", "never")
DECODERS = ("argmax", "bio")


class TaggerState(NamedTuple):
    """The unidirectional layers' LSTM state, an array per field (numpy here, torch in
    tagging/model.py); the names are the uni_step graph's input names, its outputs `next_<name>`."""

    h: Any  # (n_uni_layers, N, uni_dim)
    c: Any  # (n_uni_layers, N, uni_dim)


# The graphs' output names (tagging/export.py writes them); a hybrid's uni_step also returns ARM_OUTPUT.
TOKEN_OUTPUTS = ("token",)
UNI_STEP_OUTPUTS = ("u", *(f"next_{f}" for f in TaggerState._fields), "slot_logits", "intent_logits")
ARM_OUTPUT = "arm_logit"
BI_OUTPUTS = ("slot_logits", "intent_logits")


class UniStep(NamedTuple):
    """One word through the unidirectional layers (batch 1)."""

    u: np.ndarray  # (1, uni_dim) the layers' output: the word's input to the bidirectional layers
    state: TaggerState
    slot_logits: np.ndarray  # (1, n_slots)
    intent_logits: np.ndarray  # (1, n_intents)
    arm_logit: np.ndarray | None  # (1,) a hybrid's restart logit; None for a uni-only tagger


@dataclass(frozen=True)
class RestartPolicy:
    """When the bidirectional layers relabel the prefix; defaults come from tagger.json."""

    restart: str = "arm"  # one of POLICIES
    arm_threshold: float = 0.5
    every_k: int = 4
    final_restart: bool = True

    def __post_init__(self) -> None:
        if self.restart not in POLICIES:
            raise ValueError(f"restart policy must be one of {POLICIES}, not {self.restart!r}")
        if self.every_k < 1:
            raise ValueError(f"every_k must be >= 1, not {self.every_k}")


@dataclass
class TaggerStats:
    """Work done by one stream (cumulative until reset)."""

    n_updates: int = 0
    n_words: int = 0  # words encoded by the token graph
    n_letters: int = 0  # characters those words had (after clipping): the char CNN's work
    n_uni_steps: int = 0
    n_restarts: int = 0
    n_restart_words: int = 0  # sum of the prefix lengths the restarts covered
    n_rollbacks: int = 0  # updates that revised an earlier word

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def bio_allowed(slots: Sequence[str]) -> np.ndarray:
    """(S + 1, S) bool: row i < S says which tags may follow tag i, row S which may start a
    sequence. I-x may only follow B-x or I-x; every other tag may follow anything."""
    n = len(slots)
    allowed = np.ones((n + 1, n), bool)
    for j, tag in enumerate(slots):
        if tag.startswith("I-"):
            allowed[:, j] = [i < n and slots[i][2:] == tag[2:] and slots[i][:2] in ("B-", "I-") for i in range(n + 1)]
    return allowed


def bio_viterbi(logits: np.ndarray, allowed: np.ndarray) -> list[int]:
    """The valid tag sequence with the highest sum of log-probabilities.

    logits: (T, S) slot logits; allowed: (S + 1, S) from `bio_allowed` -> T tag ids. Each word's
    tag distribution is the model's own (no learned transitions), so where the per-word argmax
    is already valid it is the answer.
    """
    best = logits.argmax(-1)
    if allowed[np.concatenate([[len(allowed) - 1], best[:-1]]), best].all():
        return best.tolist()  # the common case, and the optimum: no search needed
    logp = _log_softmax(logits.astype(np.float64))
    forbid = np.where(allowed, 0.0, -np.inf)
    score = logp[0] + forbid[-1]  # (S,)
    back = np.zeros(logp.shape, np.int64)
    for t in range(1, len(logp)):
        cand = score[:, None] + forbid[:-1]  # (S previous, S next)
        back[t] = cand.argmax(0)
        score = cand.max(0) + logp[t]
    ids = [int(score.argmax())]
    for t in range(len(logp) - 1, 0, -1):
        ids.append(int(back[t, ids[-1]]))
    return ids[::-1]


class StreamingTagger:
    """The exported tagger (sessions and tables), shared by all streams; never changes after loading."""

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int = 1, decode: str | None = None) -> None:
        """decode: "argmax" or "bio" (module docstring); None: the export's.
        A missing or corrupt file is a `runtime.bundle.BundleError` naming it."""
        from runtime.bundle import onnx_session, read_json, read_lines

        self.folder = Path(folder)
        manifest_path = self.folder / "tagger.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{manifest_path} not found: export a tagger with `heed export tagger`")
        m = read_json(manifest_path)
        if m.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{manifest_path}: schema_version {m.get('schema_version')}, this runtime reads {SCHEMA_VERSION}")
        if precision not in m["files"]:
            raise ValueError(f"{manifest_path}: no {precision!r} files (has {', '.join(m['files'])})")
        self.manifest = m
        self.kind: str = m["kind"]
        tables = {k: read_lines(self.folder / v) for k, v in m["tables"].items()}
        self.slots: list[str] = tables["slots"]
        self.intents: list[str] = tables["intents"]
        self._word_index = {w: i for i, w in enumerate(tables["words"])}
        self._char_index = {ch: i for i, ch in enumerate(tables["chars"])}
        self.max_word_chars: int = m["max_word_chars"]
        self.decode: str = decode or m.get("decode", "argmax")
        if self.decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS}, not {self.decode!r}")
        self.allowed = bio_allowed(self.slots)  # (S + 1, S): which tag may follow which, for "bio"
        self.state_shape: tuple[int, int] | None = tuple(m["state"]["shape"]) if m["state"] else None
        p = m["policy"]
        self.default_policy = RestartPolicy(p["restart"], p["arm_threshold"] if p["arm_threshold"] is not None else 0.5,
                                            p["every_k"], p["final_restart"])
        self._sess = {part: onnx_session(self.folder / f, threads) for part, f in m["files"][precision].items()}
        self._uni_outputs = list(UNI_STEP_OUTPUTS)
        if self.has_uni and ARM_OUTPUT in {o.name for o in self._sess["uni_step"].get_outputs()}:
            self._uni_outputs.append(ARM_OUTPUT)

    @classmethod
    def from_dir(cls, folder: str | Path, precision: str = "fp32", threads: int = 1,
                 decode: str | None = None) -> "StreamingTagger":
        return cls(folder, precision, threads, decode)

    @property
    def has_uni(self) -> bool:
        return "uni_step" in self._sess

    @property
    def has_bi(self) -> bool:
        return "bi" in self._sess

    def create_stream(self, policy: RestartPolicy | None = None) -> "TaggerStream":
        return TaggerStream(self, policy or self.default_policy)

    def tag(self, words: Sequence[str]) -> tuple[list[str], dict[str, Any] | None]:
        """Offline labels for a complete utterance (the same as a stream's final result)."""
        return self.create_stream().update(words, final=True)

    # ------------------------------------------------------------ graph calls

    def encode(self, words: Sequence[str]) -> tuple[np.ndarray, int]:
        """Token vectors (T, token_dim) of `words`, and how many letters the char CNN read."""
        ids = [[self._char_index.get(ch, 1) for ch in w[: self.max_word_chars]] for w in words]
        chars = np.zeros((1, len(words), max(len(x) for x in ids)), np.int64)
        for j, x in enumerate(ids):
            chars[0, j, : len(x)] = x
        word_ids = np.array([[self._word_index.get(w, 1) for w in words]], np.int64)
        (tok,) = self._sess["token"].run(list(TOKEN_OUTPUTS), {"word_ids": word_ids, "char_ids": chars})
        return tok[0], sum(len(x) for x in ids)

    def init_state(self) -> TaggerState:
        layers, dim = self.state_shape
        return TaggerState(np.zeros((layers, 1, dim), np.float32), np.zeros((layers, 1, dim), np.float32))

    def uni_step(self, token: np.ndarray, state: TaggerState) -> UniStep:
        """token (token_dim,) and the state after the previous word -> this word's `UniStep`."""
        outs = self._sess["uni_step"].run(self._uni_outputs, {"token": token[None], **state._asdict()})
        u, h, c, slot, intent = outs[:5]
        return UniStep(u, TaggerState(h, c), slot, intent, outs[5] if len(outs) > 5 else None)

    def bi(self, bi_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """bi_input (T, d) -> slot logits (T, n_slots), intent logits (n_intents,)."""
        slot, intent = self._sess["bi"].run(list(BI_OUTPUTS), {"bi_input": bi_input[None]})
        return slot[0], intent[0]


class TaggerStream:
    """One utterance's streaming state: per word its unidirectional state and output, and what is shown."""

    def __init__(self, model: StreamingTagger, policy: RestartPolicy) -> None:
        self.model = model
        self.policy = policy
        if model.kind == "bi":
            self.policy = dataclasses.replace(policy, restart="every")
        elif model.kind == "uni":
            self.policy = dataclasses.replace(policy, restart="never", final_restart=False)
        self.stats = TaggerStats()
        self.reset()

    def reset(self) -> None:
        """Forget the utterance (the stats keep counting)."""
        self.words: list[str] = []
        self._states: list[TaggerState] = []  # after each word
        self._bi_inputs: list[np.ndarray] = []  # u_t (hybrid) or the token vector (bi), per word
        self._shown: list[int] = []  # slot id shown per word
        self._uni_intents: list[tuple[int, float]] = []  # the unidirectional intent after each word
        self._intent: tuple[int, float] | None = None
        self._since_restart = 0
        self._restarted_words: list[str] | None = None  # the words of the last restart

    def _rollback(self, words: list[str]) -> int:
        keep = 0
        while keep < min(len(words), len(self.words)) and words[keep] == self.words[keep]:
            keep += 1
        if keep < len(self.words):
            self.stats.n_rollbacks += 1
            del self._states[keep:], self._bi_inputs[keep:], self._shown[keep:], self._uni_intents[keep:]
            self.words = self.words[:keep]
            if self._uni_intents:  # the intent of the words that remain, until a restart says otherwise
                self._intent = self._uni_intents[-1]
        return keep

    def update(self, words: Sequence[str], final: bool = False) -> tuple[list[str], dict[str, Any] | None]:
        """Tags and intent for the current hypothesis `words` (all words so far, not only new ones).

        final: the hypothesis is complete (with the policy's `final_restart`, relabel it all).
        Returns (one BIO tag per word, {"label", "probability"} or None when there are no words).
        """
        words = list(words)
        for w in words:
            if not isinstance(w, str) or not w or any(ch.isspace() for ch in w):
                raise ValueError(f"words must be non-empty strings without spaces, got {w!r}")
        self.stats.n_updates += 1
        n_before = len(self.words)
        keep = self._rollback(words)
        changed = keep < n_before or keep < len(words)
        new = words[keep:]
        if not words:
            self.reset()
            return [], None
        probs: list[float] = []
        if new:
            self._since_restart += len(new)
            tokens, n_letters = self.model.encode(new)
            self.stats.n_words += len(new)
            self.stats.n_letters += n_letters
            for token in tokens:
                if self.model.has_uni:
                    step = self.model.uni_step(token, self._states[-1] if self._states else self.model.init_state())
                    self.stats.n_uni_steps += 1
                    self._states.append(step.state)
                    self._bi_inputs.append(step.u[0])
                    self._shown.append(self._label_next(step.slot_logits[0]))
                    p = _softmax(step.intent_logits[0])
                    self._intent = (int(p.argmax()), float(p.max()))
                    self._uni_intents.append(self._intent)
                    if step.arm_logit is not None:
                        probs.append(float(1 / (1 + np.exp(-step.arm_logit[0]))))
                else:
                    self._bi_inputs.append(token)
                    self._shown.append(0)
        self.words = words
        if self.model.has_bi and self._restarted_words != words and self._wants_restart(changed, probs, final):
            self._restart()
        return [self.model.slots[i] for i in self._shown], self.intent

    def _wants_restart(self, changed: bool, arm_probs: list[float], final: bool) -> bool:
        p = self.policy
        if final and p.final_restart:
            return True
        if p.restart == "every":
            return changed
        if p.restart == "every_k":
            return self._since_restart >= p.every_k
        if p.restart == "arm":
            return any(x > p.arm_threshold for x in arm_probs)
        return False

    def _label_next(self, logits: np.ndarray) -> int:
        """The newest word's label from its unidirectional slot logits (S,), given what is shown before it."""
        if self.model.decode == "bio":
            row = self.model.allowed[self._shown[-1] if self._shown else -1]
            return int(np.where(row, logits, -np.inf).argmax())
        return int(logits.argmax())

    def _restart(self) -> None:
        slot, intent = self.model.bi(np.stack(self._bi_inputs))
        if self.model.decode == "bio":
            self._shown = bio_viterbi(slot, self.model.allowed)
        else:
            self._shown = [int(i) for i in slot.argmax(-1)]
        p = _softmax(intent)
        self._intent = (int(p.argmax()), float(p.max()))
        self.stats.n_restarts += 1
        self.stats.n_restart_words += len(self._bi_inputs)
        self._since_restart = 0
        self._restarted_words = list(self.words)

    @property
    def tags(self) -> list[str]:
        return [self.model.slots[i] for i in self._shown]

    @property
    def intent(self) -> dict[str, Any] | None:
        if self._intent is None or not self.words:
            return None
        return {"label": self.model.intents[self._intent[0]], "probability": self._intent[1]}


def slot_spans(words: Sequence[str], tags: Sequence[str], starts: Sequence[float] | None = None,
               ends: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Slots as spans with values (INTERFACES.md section 3): {"slot", "value", "start_word",
    "end_word"} (end exclusive), plus "start"/"end" in seconds when word times are given.
    BIO is read as conlleval reads it (an I- that continues nothing starts a span)."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    if (starts is None) != (ends is None) or (starts is not None and not len(starts) == len(ends) == len(words)):
        raise ValueError("give starts and ends together, one per word")
    from runtime.tag_metrics import spans  # pure python; no torch behind it

    out = []
    for slot, i, j in spans(tags):
        span: dict[str, Any] = {"slot": slot, "value": " ".join(words[i:j]), "start_word": i, "end_word": j}
        if starts is not None:
            span["start"], span["end"] = float(starts[i]), float(ends[j - 1])
        out.append(span)
    return out
