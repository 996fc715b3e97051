"""The public runtime API: `Pipeline` (one per bundle, shared) and `Stream` (one per audio stream).

    pipe = Pipeline.from_bundle("models/default", threads=1)
    stream = pipe.create_stream()
    stream.accept_waveform(samples, sample_rate)   # any rate, float or int16, mono or stereo
    for event in stream.events(): ...              # dicts, ../shared/INTERFACES.md section 3
    stream.input_finished(); final = stream.result()

Events: a partial after every decoded chunk whose text changed (`final: false`), a final event
for each segment the endpointer closes (`final: true, endpoint: true`), and after
`input_finished` the last segment's final event. `result()` is the whole stream: every
segment's words in order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from runtime.asr import AsrStream, TransducerModel
from runtime.audio import AudioError, check_rate, to_mono_float
from runtime.bundle import SCHEMA_VERSION, Bundle, BundleError  # noqa: F401 (BundleError: part of the API)

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "default"


class Pipeline:
    """Everything loaded from one bundle; immutable and shared by all streams."""

    def __init__(self, bundle: Bundle, threads: int = 1, precision: str = "int8") -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        asr = bundle.manifest["asr"]
        if precision not in asr["files"]:
            raise BundleError(f"{bundle.json_path}: no {precision} ASR graphs (it has {', '.join(asr['files'])})")
        files = asr["files"][precision]
        self.bundle = bundle
        self.asr = TransducerModel(*(bundle.file(files[k]) for k in ("encoder", "decoder", "joiner")),
                                   bundle.file(asr["tokens"]), threads=threads)
        bundle.check_agrees(self.asr.fbank.to_dict(), self.asr.shift_frames * self.asr.fbank.frame_shift_ms,
                            bundle.file(files["encoder"]))
        self.search = asr.get("search", {"method": "modified_beam_search", "beam": 4})
        self.lm = None  # shallow fusion of a character n-gram LM, when the bundle has one
        if asr.get("lm"):
            from runtime.lm import LmFusion

            self.lm = bundle.part(asr["lm"]["file"], "the language model",
                                  lambda p: LmFusion.from_bundle_entry(p, asr["lm"]))
        self.endpoint = bundle.endpoint()
        self.sample_rate = self.asr.fbank.sample_rate
        self.threads = threads
        from runtime.iqd import IqdModel
        from runtime.tagger import StreamingTagger

        self.tagger = self._component("tagger", "the tagger", StreamingTagger.from_dir, precision)
        self.iqd = self._component("iqd", "the intended-query detector", IqdModel.from_dir, precision)
        # tokens that are only the word boundary do not mark the speech onset for the IQD
        self.silent_tokens = frozenset(i for i, p in enumerate(self.asr.tokens) if i > 0 and not p.replace("\u2581", ""))

    def _component(self, key: str, what: str, from_dir: Any, precision: str) -> Any:
        """An optional part of the bundle (bundle.json's `key` entry names its folder), at the bundle's
        precision when it ships that one, else fp32; None when the bundle has none."""
        entry = self.bundle.manifest.get(key)
        if not entry:
            return None
        prec = precision if precision in entry.get("precisions", []) else "fp32"
        return self.bundle.part(entry["dir"], what, lambda p: from_dir(p, precision=prec, threads=self.threads))

    @classmethod
    def from_bundle(cls, path: str | Path | None = None, threads: int = 1, precision: str = "int8") -> "Pipeline":
        return cls(Bundle.load(path or DEFAULT_BUNDLE), threads, precision)

    def create_stream(self, beam: int | None = None) -> "Stream":
        if beam is None:
            beam = self.search.get("beam", 4) if self.search.get("method") == "modified_beam_search" else 1
        return Stream(self, beam)


class Stream:
    """One audio stream; not thread-safe, cheap to create."""

    def __init__(self, pipe: Pipeline, beam: int) -> None:
        self.pipe = pipe
        self.asr = AsrStream(pipe.asr, beam=beam, endpoint=pipe.endpoint, lm=pipe.lm)
        self.reset()

    def reset(self) -> None:
        """Forget all audio and results: the stream is as new (cheaper than creating one)."""
        self.asr.reset()
        self._tagger = self.pipe.tagger.create_stream() if self.pipe.tagger is not None else None
        self._iqd = (self.pipe.iqd.create_stream(self.pipe.asr.frame_s, silent_tokens=self.pipe.silent_tokens,
                                                 fbank_cfg=self.pipe.asr.fbank, pieces=self.pipe.asr.tokens)
                     if self.pipe.iqd is not None else None)
        self._understood: list[dict[str, Any]] = []  # slots and intent of each closed segment
        self._resampler = None
        self._rate: int | None = None
        self._events: list[dict[str, Any]] = []
        self._segments: list[list[dict[str, Any]]] = []
        self._last_text = ""
        self.n_samples = 0

    def accept_waveform(self, samples: np.ndarray, sample_rate: int) -> None:
        """Add audio: (n,) or (n, channels), float in [-1, 1] or int16/int32 PCM, at any whole rate in Hz."""
        if self.asr.finished:
            raise RuntimeError("accept_waveform after input_finished")
        rate = check_rate(sample_rate, "accept_waveform")
        x = to_mono_float(samples, "accept_waveform")
        if not len(x):
            return
        x = self._resample(x, rate)
        self.n_samples += len(x)
        self.asr.feed(x)
        self._decode()

    def _decode(self, final: bool = False) -> None:
        """Chunk by chunk, so that an endpoint falls at the same chunk whatever the piece size."""
        while self.asr.decode(max_chunks=1):
            if self._iqd is not None:
                self._feed_iqd()
            self._after_chunks()
        if final:
            self._after_chunks(final=True)

    def _resample(self, x: np.ndarray, rate: int) -> np.ndarray:
        if rate <= 0:
            raise AudioError(f"sample rate must be positive, got {rate}")
        if self._rate is None:
            self._rate = rate
        elif rate != self._rate:
            raise AudioError(f"sample rate changed within a stream from {self._rate} to {rate}")
        if rate == self.pipe.sample_rate:
            return x
        if self._resampler is None:
            import soxr

            self._resampler = soxr.ResampleStream(rate, self.pipe.sample_rate, 1, dtype="float32", quality="HQ")
        return self._resampler.resample_chunk(x, last=self.asr.finished)

    def input_finished(self) -> None:
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                self.n_samples += len(tail)
                self.asr.feed(tail)
                self._decode()
        self.asr.input_finished(decode=False)
        self._decode(final=True)

    def _feed_iqd(self) -> None:
        """The chunk just decoded, with the tokens the best hypothesis emitted at its frames and its
        fbank frames (the IQD's speech-onset gate; reset with the IQD stream at every endpoint)."""
        enc, first = self.asr.last_chunk
        hyp = self.asr.best
        by_frame: list[list[int]] = [[] for _ in range(len(enc))]
        for tok, frame in zip(hyp.tokens, hyp.frames):
            if first <= frame < first + len(enc):
                by_frame[frame - first].append(tok)
        self._iqd.accept(enc, by_frame, first, self.asr.last_chunk_fbank)

    def _event(self, final: bool, endpoint: bool) -> dict[str, Any]:
        r = self.asr.result(final=final or endpoint)
        ev = {"t": round(self.asr.time_s, 3), "final": final, "endpoint": endpoint, **r}
        if self._tagger is not None:
            ev.update(self._understand(r["words"], final or endpoint))
        if self._iqd is not None:
            if final or endpoint:
                self._iqd.force(self.asr.time_s)  # the endpoint decides what is still undecided
            ev["directed"] = self._iqd.result()
        return ev

    def _understand(self, words: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        """Tag the segment's words (the tagger rolls back to the first word the ASR revised);
        sets each word's "tag" and returns the segment's slots and intent."""
        from runtime.tagger import slot_spans

        texts = [w["word"] for w in words]
        if not texts:
            return {"slots": [], "intent": None}
        tags, intent = self._tagger.update(texts, final=final)
        for w, tag in zip(words, tags):
            w["tag"] = tag
        spans = slot_spans(texts, tags, [w["start"] for w in words], [w["end"] for w in words])
        slots = [{"slot": s["slot"], "value": s["value"], "start": s["start"], "end": s["end"]} for s in spans]
        return {"slots": slots, "intent": intent}

    def _after_chunks(self, final: bool = False) -> None:
        a = self.asr
        if a.is_endpoint() and not final:
            ev = self._event(final=True, endpoint=True)
            if ev["words"]:
                self._events.append(ev)
                self._segments.append(ev["words"])
                self._understood.append(ev)
            a.new_segment()
            if self._tagger is not None:
                self._tagger.reset()  # each segment is its own query
            if self._iqd is not None:
                self._iqd.reset()
            self._last_text = ""
            return
        ev = self._event(final=final, endpoint=final)
        if final:
            if ev["words"] or not self._segments:
                self._segments.append(ev["words"])
                self._understood.append(ev)
            self._events.append(ev)
        elif ev["text"] != self._last_text:
            self._events.append(ev)
        self._last_text = ev["text"]

    def events(self) -> Iterator[dict[str, Any]]:
        """The events since the last call, oldest first."""
        out, self._events = self._events, []
        yield from out

    def result(self) -> dict[str, Any]:
        """The whole stream so far: all closed segments plus the open one."""
        words = [w for seg in self._segments for w in seg]
        understood = list(self._understood)
        if not self.asr.finished:
            open_segment = (self._event(final=False, endpoint=False) if self._tagger is not None or self._iqd is not None
                            else self.asr.result())
            words += open_segment["words"]
            understood.append(open_segment)
        out = {"t": round(self.asr.time_s, 3), "final": self.asr.finished, "endpoint": self.asr.finished,
               "text": " ".join(w["word"] for w in words), "words": words}
        if self._tagger is not None:  # slots of every segment; the intent of the last one that has one
            out["slots"] = [s for ev in understood for s in ev.get("slots", [])]
            intents = [ev["intent"] for ev in understood if ev.get("intent")]
            out["intent"] = intents[-1] if intents else None
        if self._iqd is not None:  # the decision about the last segment that has words (or the open one)
            with_words = [ev for ev in understood if ev.get("words") and ev.get("directed")]
            out["directed"] = (with_words[-1] if with_words else understood[-1] if understood else {}).get(
                "directed", self._iqd.result())
        return out
