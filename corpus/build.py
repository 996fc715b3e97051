"""`heed corpus build`: text sources -> split plan -> synthesized, augmented WAVs + manifests.

The build happens in two steps:

1. A plan, made in this process from the seed alone: which sentence goes to which split
   (sentences, not utterances, are split, so no test sentence is ever heard in training), and
   for every utterance its voice, speaking rate, pitch and acoustic condition.
2. Rendering, in a pool of worker processes: synthesize, trim the engine's own silence, apply
   the condition (corpus.augment.render), write the WAV atomically.

Resuming: each finished utterance is appended to `.progress.jsonl` in the output folder; a
second run with the same settings skips utterances whose line and WAV are both there (so
running a finished build again only rewrites its manifests). The
manifests are written only at the end, atomically, so they never point at missing audio. A run
with other settings on a folder holding an unfinished build restarts it from scratch.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from runtime.manifest import SPLITS, Utterance, read_manifest, write_manifest
from corpus.sentence import Sentence

SAMPLE_RATE = 16000
SIZES = {"small": 500, "base": 32000}
# Share of utterances per split, and of the directed class. dev/test are large enough that a
# 500-utterance corpus still has both classes and held-out voices in each.
SPLIT_SHARE = {"train": 0.8, "dev": 0.08, "test": 0.12}
DIRECTED_SHARE = 0.55
# Within a class, the share of each text source. "side" holds the command-like remarks to a
# person, the hard negatives for intended-query detection.
SOURCE_SHARE = {
    True: {"atis": 0.5, "assistant": 0.5},
    False: {"side": 0.45, "chatter": 0.25, "radio": 0.3},
}
# Share of dev/test utterances spoken by voices never heard in training.
HELDOUT_SHARE = 0.5
# Share of utterances per engine (renormalised over the engines a pool has). Without it the 23
# espeak-ng voices would speak four utterances in five; piper is the only neural voice.
ENGINE_SHARE = {"espeak-ng": 0.4, "flite": 0.25, "festival": 0.1, "piper": 0.25}
RATE_RANGE = (0.85, 1.2)
PITCH_RANGE = (0.88, 1.12)
N_BABBLE = 12
PLAN_VERSION = 3


class BuildError(RuntimeError):
    """A build that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class BuildConfig:
    out: Path
    n_utterances: int
    seed: int = 0
    workers: int = 0  # 0: all cores
    splits: tuple[str, ...] = SPLITS  # render only these (the plan, hence every utterance, is the same)

    def signature(self) -> dict:
        return {"n_utterances": self.n_utterances, "seed": self.seed, "plan_version": PLAN_VERSION}


@dataclass(frozen=True)
class PlanItem:
    """Everything a worker needs to render one utterance, and nothing it must look up."""

    id: str
    split: str
    sentence: Sentence
    voice: str
    rate: float
    pitch: float
    condition: dict
    seed: int


def parse_size(size: str) -> int:
    if size in SIZES:
        return SIZES[size]
    try:
        n = int(size)
    except ValueError:
        raise BuildError(f"--size must be one of {', '.join(SIZES)} or a number of utterances, got {size!r}") from None
    if n < 10:
        raise BuildError(f"--size {n}: a corpus needs at least 10 utterances (some for each split)")
    return n


# ---------------------------------------------------------------- text and split plan


def load_sentences(seed: int) -> dict[str, dict[str, list[Sentence]]]:
    """All text sources, split by sentence: {split: {source: [Sentence]}}.

    ATIS keeps its own train/test division (ATIS train also gives our dev). Our own sources are
    split by a hash of the text, so a sentence's split never depends on what else is loaded.
    A text that occurs in several splits is kept only in the one latest in test > dev > train.
    """
    from corpus.assistant import generate_assistant
    from corpus.atis import load_atis
    from corpus.undirected import load_undirected

    out: dict[str, dict[str, list[Sentence]]] = {s: {} for s in SPLITS}
    atis_train = load_atis("train")
    for s in atis_train:
        out[_hash_split(s.text, dev=0.1, test=0.0)].setdefault("atis", []).append(s)
    out["test"]["atis"] = load_atis("test")
    for s in generate_assistant(seed) + load_undirected(seed):
        out[_hash_split(s.text)].setdefault(s.source, []).append(s)

    seen: set[str] = set()
    for split in ("test", "dev", "train"):
        for source, sents in out[split].items():
            kept, texts = [], set()
            for s in sents:
                if s.text not in seen and s.text not in texts:
                    kept.append(s)
                    texts.add(s.text)
            out[split][source] = kept
        seen |= {s.text for sents in out[split].values() for s in sents}
    return out


def _hash_split(text: str, dev: float = SPLIT_SHARE["dev"], test: float = SPLIT_SHARE["test"]) -> str:
    h = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big") / 2**32
    return "test" if h < test else "dev" if h < test + dev else "train"


def split_counts(n: int) -> dict[str, int]:
    n_dev = max(2, round(n * SPLIT_SHARE["dev"]))
    n_test = max(2, round(n * SPLIT_SHARE["test"]))
    return {"train": n - n_dev - n_test, "dev": n_dev, "test": n_test}


def make_plan(cfg: BuildConfig, sentences: dict[str, dict[str, list[Sentence]]], voices: dict[str, bool]) -> list[PlanItem]:
    """The whole build as data. `voices` maps voice id -> held out (dev/test only)."""
    from corpus.augment import sample_condition

    rng = np.random.default_rng(cfg.seed)
    seen = sorted(v for v, held in voices.items() if not held)
    heldout = sorted(v for v, held in voices.items() if held)
    if not seen or not heldout:
        raise BuildError("the voice list needs both training voices and held-out voices")
    plan: list[PlanItem] = []
    for split, n in split_counts(cfg.n_utterances).items():
        pools = {c: {src: _shuffled(sentences[split].get(src, []), rng) for src in SOURCE_SHARE[c]} for c in (True, False)}
        used = {src: 0 for per_class in SOURCE_SHARE.values() for src in per_class}
        for i in range(n):
            directed = bool(rng.random() < DIRECTED_SHARE) if i >= 2 else i == 0  # both classes in every split
            source = _pick_source(rng, pools[directed])
            pool = pools[directed][source]
            # Each pool is walked in its shuffled order, so a sentence is repeated (by another
            # voice) only once every sentence of its pool has been used.
            sentence = pool[used[source] % len(pool)]
            used[source] += 1
            use_heldout = split != "train" and rng.random() < HELDOUT_SHARE
            voice = _pick_voice(rng, heldout if use_heldout else seen)
            plan.append(PlanItem(
                id=f"{split}-{i:06d}", split=split, sentence=sentence, voice=voice,
                rate=round(float(rng.uniform(*RATE_RANGE)), 3), pitch=round(float(rng.uniform(*PITCH_RANGE)), 3),
                condition=sample_condition(rng, directed), seed=int(rng.integers(2**31)),
            ))
    return plan


def _shuffled(items: list[Sentence], rng: np.random.Generator) -> list[Sentence]:
    order = rng.permutation(len(items))
    return [items[j] for j in order]


def _pick_source(rng: np.random.Generator, pools: dict[str, list[Sentence]]) -> str:
    shares = {src: SOURCE_SHARE_OF[src] for src, pool in pools.items() if pool}
    if not shares:
        raise BuildError("a split has no sentences for one class; the text sources are missing data")
    names = sorted(shares)
    p = np.array([shares[s] for s in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pick_voice(rng: np.random.Generator, voices: list[str]) -> str:
    """A voice drawn so each engine gets its ENGINE_SHARE of the pool, split evenly among its voices."""
    engine = [v.split("/")[0] for v in voices]
    p = np.array([ENGINE_SHARE.get(e, 0.1) / engine.count(e) for e in engine])
    return voices[int(rng.choice(len(voices), p=p / p.sum()))]


SOURCE_SHARE_OF = {src: share for per_class in SOURCE_SHARE.values() for src, share in per_class.items()}


# ---------------------------------------------------------------- rendering (worker side)

_BABBLE: list[np.ndarray] = []


def _init_worker(babble: list[np.ndarray]) -> None:
    global _BABBLE
    _BABBLE = babble
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: piper's onnxruntime too


def render_item(item: PlanItem, out: Path) -> Utterance:
    """Synthesize, augment and write one utterance; returns its manifest entry."""
    import soundfile as sf

    from corpus.augment import render, trim_silence
    from corpus.tts import synthesize

    raw = synthesize(item.voice, item.sentence.text, rate=item.rate, pitch=item.pitch)
    start, end = trim_silence(raw, SAMPLE_RATE)
    if end - start < SAMPLE_RATE // 10:
        raise BuildError(f"{item.voice} produced no speech for {item.sentence.text!r}")
    rng = np.random.default_rng(item.seed)
    audio, speech_start, speech_end = render(raw[start:end], SAMPLE_RATE, item.condition, rng, _BABBLE)
    rel = Path("wav") / item.split / f"{item.id}.wav"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    s = item.sentence
    return Utterance(
        id=item.id, audio=rel.as_posix(), duration=round(len(audio) / SAMPLE_RATE, 4), sample_rate=SAMPLE_RATE,
        text=s.text, words=list(s.words), tags=list(s.tags), intent=s.intent, directed=s.directed,
        speech_start=round(speech_start, 4), speech_end=round(speech_end, 4), voice=item.voice,
        source=s.source, split=item.split, augment=_augment(item),
    )


def _augment(item: PlanItem) -> dict:
    """The manifest's `augment`: the acoustic condition plus the synthesizer's rate and pitch."""
    return {**item.condition, "tts_rate": item.rate, "tts_pitch": item.pitch}


def _render_star(args: tuple[PlanItem, Path]) -> Utterance:
    return render_item(*args)


def make_babble(sentences: dict[str, dict[str, list[Sentence]]], voices: list[str], seed: int) -> list[np.ndarray]:
    """Clips of other training sentences for babble noise, from fast engines only."""
    from corpus.augment import trim_silence
    from corpus.tts import synthesize

    rng = np.random.default_rng(seed + 1)
    texts = [s.text for src in sorted(sentences["train"]) for s in sentences["train"][src][:50]]
    fast = [v for v in voices if v.startswith(("espeak-ng/", "flite/"))] or voices
    clips = []
    for text in rng.choice(texts, size=min(N_BABBLE, len(texts)), replace=False):
        x = synthesize(str(rng.choice(fast)), str(text))
        a, b = trim_silence(x, SAMPLE_RATE)
        clips.append(x[a:b].astype(np.float32))
    return clips


# ---------------------------------------------------------------- the build


def build_corpus(cfg: BuildConfig, progress: bool = True) -> dict[str, list[Utterance]]:
    """Build (or resume) a corpus in `cfg.out`; returns the utterances per split."""
    from corpus.tts import VOICES, require_voices

    t0 = time.time()
    voices = {v.id: v.heldout for v in VOICES.values()}
    require_voices(list(voices))
    out = cfg.out
    _prepare_out(out, cfg)
    sentences = load_sentences(cfg.seed)
    plan = make_plan(cfg, sentences, voices)
    unknown = set(cfg.splits) - set(SPLITS)
    if unknown or not cfg.splits:
        raise BuildError(f"splits must be some of {', '.join(SPLITS)}, got {', '.join(cfg.splits) or 'none'}")
    plan = [item for item in plan if item.split in cfg.splits]
    done = _read_progress(out, plan)
    todo = [item for item in plan if item.id not in done]
    if todo:
        babble = make_babble(sentences, [v for v, held in voices.items() if not held], cfg.seed)
        _render_all(todo, out, babble, cfg.workers, done, progress)
    by_split: dict[str, list[Utterance]] = {s: [] for s in cfg.splits}
    for item in plan:
        by_split[item.split].append(done[item.id])
    for split, utts in by_split.items():
        write_manifest(out / f"{split}.jsonl", utts)
    info = {**cfg.signature(), "finished": True, "seconds": round(time.time() - t0, 1),
            "n_voices": len(voices), "counts": {s: len(u) for s, u in by_split.items()}, "splits": list(cfg.splits)}
    (out / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    return by_split


def _prepare_out(out: Path, cfg: BuildConfig) -> None:
    """Make `out` ready: keep a resumable build with the same settings, refuse foreign folders."""
    info_path = out / "build.json"
    if out.exists() and any(out.iterdir()):
        if not info_path.exists():
            raise BuildError(f"{out} exists and is not a heed corpus; choose an empty or new folder")
        info = json.loads(info_path.read_text())
        same = all(info.get(k) == v for k, v in cfg.signature().items())
        if not same:
            print(f"{out}: holds a build with other settings; starting again")
            for split in SPLITS:
                (out / f"{split}.jsonl").unlink(missing_ok=True)
            shutil.rmtree(out / "wav", ignore_errors=True)
            (out / ".progress.jsonl").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps({**cfg.signature(), "finished": False}, indent=1) + "\n")


def _read_progress(out: Path, plan: list[PlanItem]) -> dict[str, Utterance]:
    """Finished utterances of an interrupted (or finished) build, checked against the plan."""
    by_id = {item.id: item for item in plan}
    done: dict[str, Utterance] = {}
    path = out / ".progress.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                u = Utterance(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # the line being written when the build was stopped
            item = by_id.get(u.id)
            same = item and (u.text, u.voice, u.augment) == (item.sentence.text, item.voice, _augment(item))
            if same and (out / u.audio).exists():
                done[u.id] = u
    return done


def _render_all(todo: list[PlanItem], out: Path, babble: list[np.ndarray], workers: int,
                done: dict[str, Utterance], progress: bool) -> None:
    from tqdm import tqdm

    n_workers = workers or os.cpu_count() or 1
    with open(out / ".progress.jsonl", "a", encoding="utf-8") as log, \
            tqdm(total=len(todo), desc="synthesizing", unit="utt", disable=not progress) as bar:
        def record(u: Utterance) -> None:
            done[u.id] = u
            log.write(json.dumps(asdict(u)) + "\n")
            log.flush()
            bar.update()

        if n_workers == 1:
            _init_worker(babble)
            for item in todo:
                record(render_item(item, out))
            return
        ctx = get_context("fork")
        with ctx.Pool(n_workers, initializer=_init_worker, initargs=(babble,)) as pool:
            for u in pool.imap_unordered(_render_star, [(item, out) for item in todo], chunksize=4):
                record(u)
