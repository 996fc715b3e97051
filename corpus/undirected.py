"""Speech not addressed to the device: the negative class of intended-query detection.

Three sources, every sentence tagged all `O`, intent None, directed False:

    chatter  casual dialogue lines of the chatterbot-corpus package (English YAML files)
    side     remarks to another person, written by us from templates; many look like device
             commands but are said to someone by name ("sam could you turn the lights off"),
             and they share the assistant's slot values, so words alone cannot tell the classes
    radio    radio/TV-like sentences: short single-sentence Debian fortunes and the example
             sentences inside WordNet glosses

Free text goes through `runtime.verbalize.spoken_form`; a sentence it cannot clean is dropped.
The file readers are cached, so a second `load_undirected` costs only the templates.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from corpus.assistant import fill, generate_assistant, slot_values
from corpus.sentence import Sentence
from runtime.verbalize import spoken_form

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
# Fortune files that are pictures, code or not English.
FORTUNES_SKIP = {"art", "ascii-art", "translate-me", "perl"}
RADIO_WORDS = (4, 25)     # kept radio sentences have this many words, inclusive
CHATTER_MAX_WORDS = 30
SIDE_CAP = 5000           # distinct side sentences made by templates
SIDE_WRAPPED = 1500       # assistant commands said to a person by name ("tom turn the lights off")
RADIO_CAP = 5000          # radio sentences kept, half fortunes, half WordNet where there are enough
MAX_MISSES = 2000
# A WordNet noun or adjective example with one of these words is a clause, not a bare phrase.
CLAUSE_WORDS = set("""is was are were am be been has have had will would can could shall should
may might must do does did isn't wasn't aren't weren't don't doesn't didn't won't can't""".split())

# Said to a person, not the device. `{name}` is who is spoken to; other slots are the assistant's.
SIDE_TEMPLATES = (
    # command-like, addressed by name
    "{name} could you turn the lights (off|on)",
    "{name} (can|could|would) you turn (on|off) the {device} in the {room}",
    "hey {name} play that song again",
    "{name} did you set an alarm for {date}",
    "{name} did you set the alarm for {time}",
    "{name} can you set a timer for {duration} my hands are full",
    "{name} put {item} on the list would you",
    "did you remember to add {item} to the shopping list {name}",
    "{name} what's the weather supposed to be like {date}",
    "{name} call {person} and tell them {message}",
    "{name} turn (it|that|the music|the tv) (down|up) a bit",
    "hey {name} put on some {genre}",
    "{name} play {song} it's my favorite",
    "{name} remind me to {task} {date}",
    "{name} don't forget to {task}",
    "{name} will you text {person} that {message}",
    "{name} what time is it",
    "{name} how long does it take to get to {destination}",
    "{name} can you drive me to {destination} {date}",
    "{name} it's (freezing|so cold|boiling|too hot) in here can you (turn the heat up|open a window)",
    "{name} did you turn off the {device}",
    "{name} did you call {person} back",
    "{name} is it going to rain {date}",
    "{name} ask it to set an alarm for {time}",
    "{name} can you ask the speaker to play some {genre}",
    "{name} could you dim the lights in the {room}",
    "{name} set the table please",
    "{name} stop that right now",
    "{name} cancel your {event} we have guests",
    "{name} turn the thermostat (up|down) before you go to bed",
    "{name} can you check if we have {item}",
    "{name} skip this song i hate it",
    "(mum|dad|honey) did you (set|turn off) the alarm",
    # remarks and side talk that mention the same things
    "i set an alarm for {time} but (i slept right through it|it never went off)",
    "the alarm went off at {time} this morning",
    "i think the {device} in the {room} is broken",
    "we're out of {item} again",
    "{person} said it's going to rain {date}",
    "i have a {event} {date} at {time}",
    "my {event} got moved to {date}",
    "i can't stand {artist} (anymore|honestly|)",
    "have you heard the new {artist} album",
    "i love this song",
    "this is {song} by {artist} right",
    "who left the lights on in the {room}",
    "the {room} is always so (cold|hot|dark)",
    "{person} is coming over {date}",
    "i'll be back in {duration}",
    "dinner will be ready in {duration}",
    "it takes about {duration} to get to {destination}",
    "i'm meeting {person} at {time} {date}",
    "i told {person} {message}",
    "{person} texted (me|us) {message}",
    "the lights in the {room} keep flickering",
    "remind me to tell {person} about the {event}",
    "we should really get some {item}",
    "the timer went off ages ago",
    "i already set a timer for {duration}",
    "the traffic to {destination} was terrible",
    "it's supposed to be {temperature} {date}",
    "i turned the heat down to {temperature}",
    "can you believe it's (only|already) {time}",
)
# Ways of saying an assistant command to a person instead of the device.
WRAPS = ("{name} {cmd}", "hey {name} {cmd}", "{cmd} {name}", "{name} {cmd} please")
KIN = "mum|mom|dad|honey|babe|sweetie|guys|kids|buddy|grandma|grandpa|love"


def load_undirected(seed: int = 0) -> list[Sentence]:
    """Distinct undirected sentences of all three sources, shuffled, deterministic for `seed`.

    A text the assistant also makes for this seed is left out, so no text carries both labels.
    Raises FileNotFoundError naming the package to install when a source is missing.
    """
    rng = random.Random(seed)
    taken = {s.text for s in generate_assistant(seed)}
    out: list[Sentence] = []
    for source, texts in (("side", side_texts(seed)), ("chatter", chatter_texts()),
                          ("radio", radio_texts(seed))):
        for text in texts:
            if text not in taken:
                taken.add(text)
                out.append(Sentence.untagged(text, directed=False, source=source))
    rng.shuffle(out)
    return out


def undirected_counts(seed: int = 0) -> dict[str, int]:
    """Sentences per source of `load_undirected(seed)`."""
    return dict(Counter(s.source for s in load_undirected(seed)))


def side_texts(seed: int = 0) -> list[str]:
    """Remarks to a person from SIDE_TEMPLATES, then assistant commands wrapped with a name."""
    rng = random.Random(seed + 7)
    values = dict(slot_values(seed))
    first_names = [p for p in values["person"] if " " not in p][:200]
    values["name"] = tuple(first_names + KIN.split("|"))
    seen: dict[str, None] = {}
    misses = 0
    while len(seen) < SIDE_CAP and misses < MAX_MISSES:
        text = " ".join(fill(rng.choice(SIDE_TEMPLATES), rng, values)[0])
        misses = misses + 1 if text in seen else 0
        seen[text] = None
    for cmd in generate_assistant(seed + 1, n=SIDE_WRAPPED):
        wrap = rng.choice(WRAPS)
        seen[wrap.format(name=rng.choice(values["name"]), cmd=cmd.text)] = None
    return list(seen)


@lru_cache(maxsize=1)
def chatter_texts() -> tuple[str, ...]:
    """Dialogue lines of chatterbot-corpus's English conversations, in spoken form."""
    try:
        from chatterbot_corpus import corpus as cc
    except ImportError as e:
        raise FileNotFoundError("chatter sentences need chatterbot-corpus: pip install chatterbot-corpus") from e
    import yaml

    out: dict[str, None] = {}
    for path in sorted(Path(cc.DATA_DIRECTORY, "english").glob("*.yml")):
        for dialogue in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations") or []:
            for line in dialogue:
                text = spoken_form(str(line))
                if text and len(text.split()) <= CHATTER_MAX_WORDS:
                    out[text] = None
    return tuple(out)


def radio_texts(seed: int = 0, cap: int = RADIO_CAP) -> list[str]:
    """Up to `cap` short sentences, fortunes first up to half, WordNet examples filling the rest."""
    rng = random.Random(seed + 11)
    fortunes, examples = list(fortune_texts()), list(wordnet_examples())
    rng.shuffle(fortunes)
    rng.shuffle(examples)
    n_fortunes = min(len(fortunes), cap // 2)
    return list(dict.fromkeys(fortunes[:n_fortunes] + examples[: cap - n_fortunes]))


@lru_cache(maxsize=2)
def fortune_texts(folder: Path = FORTUNES_DIR) -> tuple[str, ...]:
    """Fortunes that are one short sentence (no attribution, no verse), in spoken form."""
    if not folder.is_dir():
        raise FileNotFoundError(f"radio sentences need Debian fortunes in {folder}: apt-get install fortunes")
    out: dict[str, None] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix or path.name in FORTUNES_SKIP or not path.is_file():
            continue  # .dat indexes, .u8 links, pictures
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            text = _one_sentence(entry)
            if text:
                out[text] = None
    return tuple(out)


@lru_cache(maxsize=2)
def wordnet_examples(folder: Path = WORDNET_DIR) -> tuple[str, ...]:
    """The quoted example sentences of WordNet glosses ("the sun was hot"), in spoken form.

    Examples of verbs are sentences; those of nouns and adjectives are often bare phrases
    ("a three wheel bike"), so they are kept only when they hold a finite verb from CLAUSE_WORDS.
    """
    paths = sorted(folder.glob("data.*"))
    if not paths:
        raise FileNotFoundError(f"radio sentences need WordNet in {folder}: apt-get install wordnet-base")
    out: dict[str, None] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            _, bar, gloss = line.partition(" | ")
            for quoted in re.findall(r'"([^"]+)"', gloss) if bar else ():
                if path.name != "data.verb" and not CLAUSE_WORDS & set(quoted.lower().split()):
                    continue
                text = _one_sentence(quoted)
                if text:
                    out[text] = None
    return tuple(out)


def _one_sentence(raw: str) -> str | None:
    """Spoken form of `raw` if it is one plain sentence of RADIO_WORDS words, else None."""
    raw = raw.strip()
    lines = raw.splitlines()
    # Verse, quoted dialogue and attributions ("-- Mark Twain") are not radio speech.
    if not raw or len(lines) > 3 or any(l.startswith((" ", "\t")) for l in lines) or "--" in raw:
        return None
    body = " ".join(lines).rstrip(".!?")
    if re.search(r"[.!?;:]\s", body) or re.search(r'["()\[\]]', body):
        return None
    text = spoken_form(body)
    if text is None or not RADIO_WORDS[0] <= len(text.split()) <= RADIO_WORDS[1]:
        return None
    return text
