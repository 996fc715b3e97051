"""The voice-assistant domain, written by us: templates per intent filled from slot value lists.

A template is one line of compact data:

    "(please |)wake me up at {time} (tomorrow|{date}|)"

`(a|b|)` picks one alternative (an empty one makes the group optional), `{slot}` draws a value
from `slot_values()[slot]` and tags it `B-slot I-slot ...`, `{slot:table}` draws it from another
table (`{location:destination}`: a street address is a location, but only for navigation);
every other word is tagged `O`.
All numbers are spelled by `num2words`, never by hand.
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

from num2words import num2words

from corpus.sentence import WORD_RE, Sentence

SOURCE = "assistant"
PER_INTENT_CAP = 800      # n=None: at most this many distinct sentences per intent
MAX_MISSES = 400          # consecutive duplicate draws after which an intent counts as exhausted
MAX_N = 50_000            # largest n accepted; more would take minutes to draw

ALT_RE = re.compile(r"\(([^()]*)\)")
SLOT_RE = re.compile(r"\{([a-z_]+)(?::([a-z_]+))?\}")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "set_alarm": (
        "(please |)wake me up at {time} (tomorrow|{date}|)",
        "set an alarm for {time}",
        "set (an|my) alarm for {time} {date}",
        "(can you|could you|would you) set an alarm for {time} (please|)",
        "alarm {time}",
        "i need to be up at {time} {date}",
        "(make|set) an alarm (called|labeled) {label} for {time}",
        "wake me at {time}",
        "get me up at {time} (please|)",
        "set a (recurring|daily) alarm for {time}",
        "i want an alarm at {time} {date}",
        "alarm for {time} {date} (please|)",
        "(please |)set my alarm to {time}",
    ),
    "set_timer": (
        "set a timer for {duration}",
        "(please |)start a {duration} timer",
        "timer {duration}",
        "(can you|could you) set a timer for {duration} (please|)",
        "count down {duration}",
        "set a {label} timer for {duration}",
        "start a timer for {duration} (for the|called) {label}",
        "remind me in {duration}",
        "let me know when {duration} (is up|have passed)",
        "i need a timer for {duration}",
        "put a timer on for {duration}",
        "add {duration} to the timer",
        "how much time is left on the (timer|{label} timer)",
    ),
    "weather": (
        "what's the weather (like|) {date}",
        "what's the weather in {location} {date}",
        "(will|is) it (going to |)(rain|snow) {date}",
        "is it going to rain in {location} {date}",
        "how (hot|cold|warm) (is it|will it be) {date}",
        "weather (in {location}|{date}|)",
        "(do|will) i need an umbrella {date}",
        "what's the forecast for {location}",
        "give me the forecast for {date}",
        "how windy is it in {location}",
        "what's the temperature (outside|in {location}) (right now|)",
        "tell me the weather (please|)",
        "is it sunny in {location} {date}",
        "should i (wear|bring) a (coat|jacket) {date}",
    ),
    "play_music": (
        "play {song} by {artist}",
        "play {song}",
        "(please |)play some {genre}",
        "play (something|some music) by {artist}",
        "put on {artist}",
        "i want to (hear|listen to) {song}",
        "(can you|could you) play {artist} (please|)",
        "play {genre} music in the {room}",
        "shuffle (songs by|) {artist}",
        "play my {genre} playlist",
        "listen to {artist} on {app}",
        "play {song} on {app}",
        "start playing {genre}",
        "put on some {genre} (music|) (please|)",
    ),
    "lights": (
        "turn (on|off) the (lights|light) (in the {room}|)",
        "turn the {room} (lights|light) (on|off)",
        "(switch|turn) (on|off) the {device}",
        "(please |)dim the lights in the {room}",
        "(brighten|dim) the {room} lights to {level}",
        "set the lights to {level}",
        "set the {room} lights to {color}",
        "make the lights {color}",
        "lights (on|off)",
        "(can you|could you) turn (on|off) the lights (please|)",
        "turn the {device} (on|off) in the {room}",
        "i need more light in the {room}",
        "it's too dark in the {room}",
        "kill the lights in the {room}",
    ),
    "thermostat": (
        "set the (temperature|thermostat|heat) to {temperature}",
        "(please |)turn the heat (up|down)",
        "make it (warmer|cooler) in the {room}",
        "set the {room} to {temperature}",
        "turn (on|off) the (heating|air conditioning|heater)",
        "(can you|could you) set the thermostat to {temperature} (please|)",
        "what's the temperature in the {room}",
        "raise the temperature (by {degrees}|)",
        "lower the temperature by {degrees}",
        "it's (too cold|freezing|too hot|boiling) in (here|the {room})",
        "heat the {room} to {temperature} {date}",
        "thermostat {temperature}",
        "keep the house at {temperature}",
    ),
    "call": (
        "call {person}",
        "(please |)call {person} (on speaker|on their mobile|at work|)",
        "(phone|ring|dial) {person}",
        "(can you|could you) call {person} (please|)",
        "i want to call {person}",
        "get {person} on the phone",
        "start a video call with {person}",
        "facetime {person}",
        "call {person} on {app:chat_app}",
        "give {person} a call",
        "make a call to {person}",
        "call back {person}",
        "redial (the last number|{person})",
    ),
    "send_message": (
        "(text|message) {person} {message}",
        "send a message to {person} saying {message}",
        "tell {person} {message}",
        "(please |)send {person} a text (saying|that says) {message}",
        "(can you|could you) text {person} that {message}",
        "send {message} to {person}",
        "message {person} on {app:chat_app} {message}",
        "reply to {person} {message}",
        "let {person} know {message}",
        "write to {person} {message}",
        "send a text to {person}",
        "read my (messages|texts) (from {person}|)",
    ),
    "reminder": (
        "remind me to {task} (at {time}|{date}|{date} at {time})",
        "(please |)remind me to {task}",
        "set a reminder to {task} {date}",
        "(can you|could you) remind me to {task} at {time}",
        "reminder {task} {date}",
        "don't let me forget to {task}",
        "add a reminder for {event} {date}",
        "remind me about the {event} {date}",
        "remind me in {duration} to {task}",
        "i need to {task} (at {time}|{date}) remind me",
        "what are my reminders (for {date}|)",
        "create a reminder (called|named) {task}",
    ),
    "calendar": (
        "what's on my calendar {date}",
        "(add|put) (a|the) {event} (to|on) my calendar {date} at {time}",
        "schedule (a|the) {event} {date} (at {time}|)",
        "when is my (next|) {event}",
        "do i have anything (on|) {date}",
        "(am i|are we) free {date} at {time}",
        "move my {event} to {time} {date}",
        "cancel my {event} {date}",
        "book a {event} with {person} {date}",
        "set up a {event} with {person} at {time}",
        "what's my first meeting {date}",
        "what time is my {event} {date}",
        "show me my schedule for {date}",
    ),
    "navigation": (
        "navigate to {location:destination}",
        "(take me|drive me|get me) to {location:destination}",
        "(give me |show me |)directions to {location:destination}",
        "how (far|long) is it to {location:destination}",
        "how do i get to {location:destination}",
        "what's the (fastest|quickest|shortest) way to {location:destination}",
        "(please |)start navigation to {location:destination}",
        "how's the traffic (to|on the way to) {location:destination}",
        "find (a|the nearest) {place} (near me|)",
        "where is the nearest {place}",
        "take me (home|to work)",
        "avoid tolls on the way to {location:destination}",
        "how long will it take to (drive|walk) to {location:destination}",
    ),
    "shopping_list": (
        "add {item} to (my|the) shopping list",
        "put {item} on (my|the) (shopping|grocery) list",
        "(please |)add {item} and {item} to my list",
        "we need {item} (add it to the list|)",
        "remove {item} from (my|the) shopping list",
        "take {item} off the list",
        "what's on my shopping list",
        "(can you|could you) add {item} to my grocery list (please|)",
        "is {item} on my shopping list",
        "shopping list add {item}",
        "i'm out of {item}",
        "don't let me forget to buy {item}",
        "read me my shopping list",
    ),
    "volume": (
        "(turn it|turn the volume|volume) (up|down)",
        "set the volume to {level}",
        "(please |)make it (louder|quieter)",
        "(mute|unmute) (the {device:speaker}|the sound|)",
        "volume {level}",
        "turn (up|down) the {device:speaker} (in the {room}|)",
        "(can you|could you) turn it (up|down) a (bit|little) (please|)",
        "it's too (loud|quiet)",
        "lower the volume (to {level}|)",
        "raise the volume (to {level}|)",
        "turn the volume all the way (up|down)",
        "set the {room} speaker to {level}",
    ),
    "media_control": (
        "(pause|resume|stop) (the music|the song|playback|the {device:speaker}|)",
        "(next|skip this|previous) (song|track)",
        "skip (this|) (song|track|)",
        "go back (a song|to the last song)",
        "(please |)play the next (song|episode)",
        "(repeat|replay) this (song|track)",
        "(turn on|turn off) shuffle",
        "fast forward {duration}",
        "rewind {duration}",
        "skip ahead {duration}",
        "what song is (this|playing)",
        "who sings this (song|)",
        "like this song",
        "play (the|this) (song|album) from the (start|beginning)",
    ),
    "cancel": (
        "(cancel|delete|turn off) (my|the) (alarm|timer|reminder)",
        "(cancel|delete) my {time} alarm",
        "(cancel|stop) the timer for {duration}",
        "(cancel|stop) the {label} timer",
        "stop (the alarm|the timer|that|it|)",
        "(never mind|forget it|cancel that)",
        "(please |)stop",
        "cancel (all my|all the) (alarms|timers|reminders)",
        "turn off the alarm for {date}",
        "i'm awake turn it off",
        "snooze (the alarm|) (for {duration}|)",
        "dismiss the (alarm|timer)",
        "cancel the reminder to {task}",
    ),
    "question": (
        "what time is it (in {location}|)",
        "what's the date (today|tomorrow|)",
        "what day is it (today|tomorrow|)",
        "how (far|big) is {location}",
        "what's the (population|time zone) of {location}",
        "who is {artist}",
        "how many (ounces|cups|grams) in a (pound|liter|kilogram)",
        "what's {number} (times|plus|minus|divided by) {number}",
        "how do you spell {word}",
        "what does {word} mean",
        "define {word}",
        "(tell me|) a joke",
        "(tell me about|what do you know about) {location}",
        "when does the sun (set|rise) {date}",
        "what's the capital of {location}",
    ),
}

# Values written in spoken form. Lists built from code (times, numbers, names) are in slot_values().
CITIES = """new york|los angeles|chicago|houston|phoenix|philadelphia|san antonio|san diego|dallas|
austin|seattle|denver|boston|nashville|portland|las vegas|detroit|memphis|atlanta|miami|
new orleans|minneapolis|cleveland|pittsburgh|salt lake city|kansas city|san francisco|
london|paris|berlin|madrid|rome|dublin|edinburgh|manchester|toronto|vancouver|montreal|
sydney|melbourne|tokyo|seoul|mexico city|lisbon|amsterdam|oslo|stockholm|vienna|prague|
canada|france|japan|italy|spain|germany|brazil|ireland|scotland|texas|california|florida"""
PLACES = """gas station|coffee shop|pharmacy|supermarket|hospital|parking garage|hardware store|
bakery|post office|bank|restaurant|pizza place|library|train station|bus stop|gym|park|
hotel|car wash|bookstore|ice cream shop|charging station|vet|dentist"""
DESTINATIONS = """the airport|the office|work|home|the mall|the beach|the stadium|the zoo|
the city center|downtown|grandma's house|the school|the hospital|the train station|
the nearest gas station|the closest pharmacy|my mom's place|the gym|the park"""
ARTISTS = """taylor swift|the beatles|adele|ed sheeran|beyonce|drake|queen|coldplay|
david bowie|elton john|bruce springsteen|bob dylan|billie eilish|the rolling stones|
fleetwood mac|stevie wonder|whitney houston|michael jackson|prince|madonna|rihanna|
kendrick lamar|dolly parton|johnny cash|willie nelson|norah jones|miles davis|
john coltrane|ella fitzgerald|frank sinatra|nirvana|radiohead|pink floyd|the killers|
arctic monkeys|lady gaga|bruno mars|harry styles|dua lipa|the weeknd|sza|lizzo|
kacey musgraves|luke combs|ariana grande|shakira|bad bunny|bon jovi|metallica|abba"""
SONGS = """yesterday|hey jude|let it be|bohemian rhapsody|shake it off|hello|thriller|
billie jean|purple rain|imagine|wonderwall|yellow|hotel california|sweet caroline|
dancing queen|rolling in the deep|shape of you|bad guy|blinding lights|levitating|
don't stop believing|piano man|jolene|hallelujah|respect|superstition|like a prayer|
smells like teen spirit|take on me|africa|september|uptown funk|happy|crazy in love|
old town road|watermelon sugar|someone like you|fix you|clocks|heroes|space oddity|
born to run|dreams|landslide|i will always love you|the sound of silence|mr brightside|
wake me up|stay|halo|umbrella|toxic|roar|perfect|thinking out loud|as it was|flowers"""
GENRES = """jazz|rock|classical|country|hip hop|pop|blues|reggae|folk|metal|soul|funk|
disco|techno|house|lo fi|indie|punk|gospel|opera|bluegrass|rap|r and b|ambient|
eighties|nineties|christmas|workout|chill|sleep"""
APPS = "spotify|pandora|youtube|youtube music|apple music|the radio|soundcloud|tidal"
CHAT_APPS = "whatsapp|skype|zoom|signal|telegram|messenger|facetime|teams"
SPEAKERS = "tv|television|radio|speaker|stereo|soundbar|music|kitchen speaker|headphones"
ROOMS = """kitchen|living room|bedroom|bathroom|office|hallway|garage|basement|dining room|
kids room|guest room|nursery|attic|porch|backyard|laundry room|den|master bedroom"""
DEVICES = """lamp|tv|television|fan|heater|speaker|porch light|desk lamp|ceiling fan|
night light|radio|coffee maker|air purifier|dishwasher|washing machine|projector|
stereo|christmas lights|kettle|floor lamp"""
COLORS = "red|blue|green|warm white|cool white|purple|orange|yellow|pink|daylight"
EVENTS = """dentist appointment|team meeting|doctor's appointment|haircut|lunch with sam|
standup|yoga class|piano lesson|parent teacher conference|book club|dinner reservation|
job interview|soccer practice|flight|birthday party|gym session|date night|
conference call|staff meeting|vet appointment|oil change"""
LABELS = """pasta|pizza|eggs|laundry|cookies|tea|rice|bread|workout|nap|homework|oven|
roast|cake|steak|stretching|meditation|study|parking|bath"""
TASKS = """take out the trash|call mom|pick up the kids|water the plants|pay the rent|
buy milk|take my medicine|feed the cat|walk the dog|check the oven|return the library books|
book a table|send the report|pick up the dry cleaning|charge my phone|lock the back door|
move the car|renew my passport|email my boss|pack my lunch|stretch|drink some water|
call the plumber|order a birthday present|back up my laptop|cancel the gym membership"""
ITEMS = """milk|eggs|bread|butter|cheese|apples|bananas|coffee|tea|sugar|flour|rice|pasta|
tomatoes|onions|garlic|potatoes|carrots|chicken|ground beef|salmon|yogurt|orange juice|
cereal|oatmeal|peanut butter|jam|honey|olive oil|salt|pepper|paper towels|toilet paper|
dish soap|laundry detergent|toothpaste|shampoo|batteries|light bulbs|trash bags|
dog food|cat litter|lettuce|spinach|avocados|lemons|strawberries|blueberries|ice cream|
frozen peas|tortillas|beans|almond milk|sparkling water|coffee filters|aluminum foil"""
MESSAGES = """i'm running late|i'll be there soon|on my way|call me when you can|
see you tonight|happy birthday|don't forget the milk|i'm stuck in traffic|
dinner is ready|can you pick me up|i love you|thanks for today|i'm home|
the meeting moved to tomorrow|let's grab lunch|good luck today|miss you|
i left my keys at home|are you still coming|sorry i missed your call|
i'll call you back|we need to talk|the kids are asleep|congratulations|
do you need anything from the store|save me a seat|i'm at the front door"""
WORDS = """serendipity|necessary|rhythm|ubiquitous|ephemeral|onomatopoeia|conscientious|
pneumonia|entrepreneur|mischievous|quinoa|colonel|worcestershire|definitely|
accommodate|lackadaisical|quixotic|esoteric|pragmatic|gregarious"""
DATES_FIXED = """today|tomorrow|tonight|this morning|this afternoon|this evening|
tomorrow morning|tomorrow night|this weekend|next week|the day after tomorrow|
on the weekend|on weekdays|every day"""
DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
MONTHS = """january|february|march|april|may|june|july|august|september|october|
november|december"""
RELATIONS = """mom|mum|dad|grandma|grandpa|my sister|my brother|my wife|my husband|
the babysitter|my boss|the office|uncle joe|aunt mary|the kids"""


def say(number: int, to: str = "cardinal") -> str:
    """`number` in words, as spoken form: num2words without hyphens or commas."""
    return re.sub(r"[-,]", " ", num2words(number, to=to)).replace("  ", " ").strip()


def _split(table: str) -> list[str]:
    return [v.strip() for v in table.split("|") if v.strip()]


def _times() -> list[str]:
    """Clock times the way people say them: seven thirty, half past six, noon, six a m."""
    out = ["noon", "midnight"]
    for h in range(1, 13):
        hour, nxt = say(h), say(h % 12 + 1)
        out += [hour, f"{hour} o'clock", f"{hour} a m", f"{hour} p m", f"half past {hour}",
                f"quarter past {hour}", f"quarter to {nxt}", f"{hour} thirty a m", f"{hour} fifteen p m"]
        if 5 <= h <= 11:  # "twelve in the morning" is not said
            out += [f"{hour} in the morning", f"{hour} in the evening"]
        out += [f"{hour} oh {say(m)}" for m in range(1, 10)]
        out += [f"{hour} {say(m)}" for m in range(10, 60, 5)]
        out += [f"{say(m)} past {hour}" for m in (5, 10, 20, 25)]
    return out


def _dates() -> list[str]:
    days, months = _split(DAYS), _split(MONTHS)
    out = _split(DATES_FIXED)
    out += [f"{p} {d}" for d in days for p in ("on", "next", "this")] + days
    out += [f"{m} {say(d, 'ordinal')}" for m in months for d in (1, 2, 3, 5, 10, 14, 21, 30)]
    out += [f"on the {say(d, 'ordinal')}" for d in range(1, 32)]
    out += [f"in {say(n)} days" for n in range(2, 8)]
    return out


def _durations() -> list[str]:
    out = ["an hour", "an hour and a half", "half an hour", "a minute", "a minute and a half",
           "thirty seconds", "ninety seconds", "a quarter of an hour", "one minute"]
    out += [f"{say(n)} minutes" for n in list(range(2, 21)) + list(range(25, 61, 5)) + [90]]
    out += [f"{say(n)} seconds" for n in (10, 15, 20, 45)]
    out += [f"{say(n)} hours" for n in range(2, 9)]
    out += [f"{say(h)} {'hour' if h == 1 else 'hours'} and {say(m)} minutes" for h in (1, 2) for m in (10, 15, 30)]
    out += [f"an hour and {say(m)} minutes" for m in (5, 10, 15, 20, 45)]
    return out


def _names(seed: int, n_first: int = 300, n_last: int = 150) -> tuple[list[str], list[str]]:
    """Seeded faker en_US first and last names, lowercased, kept if they are spoken-form words."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    # dict.fromkeys keeps draw order: a set's order would change with PYTHONHASHSEED.
    first = list(dict.fromkeys(fake.first_name().lower() for _ in range(n_first * 3)))[:n_first]
    last = list(dict.fromkeys(fake.last_name().lower() for _ in range(n_last * 3)))[:n_last]
    return [w for w in first if WORD_RE.match(w)], [w for w in last if WORD_RE.match(w)]


def _streets(seed: int, n: int = 80) -> list[str]:
    """Faker street addresses in spoken form, e.g. "forty two maple street"."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed + 1)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        street = fake.street_name().lower()
        if all(WORD_RE.match(w) for w in street.split()):
            out.append(f"{say(rng.randint(1, 999))} {street}")
    return out


@lru_cache(maxsize=4)
def slot_values(seed: int = 0) -> dict[str, tuple[str, ...]]:
    """Every slot's values in spoken form; names and streets depend on `seed`."""
    first, last = _names(seed)
    rng = random.Random(seed)
    full = [f"{f} {rng.choice(last)}" for f in first[:120]]
    values = {
        "time": _times(), "date": _dates(), "duration": _durations(),
        "person": first + full + _split(RELATIONS),
        "location": _split(CITIES),
        "destination": _split(DESTINATIONS) + _split(CITIES) + _streets(seed),
        "place": _split(PLACES), "artist": _split(ARTISTS), "song": _split(SONGS),
        "genre": _split(GENRES), "app": _split(APPS), "chat_app": _split(CHAT_APPS),
        "speaker": _split(SPEAKERS), "room": _split(ROOMS),
        "device": _split(DEVICES), "color": _split(COLORS), "event": _split(EVENTS),
        "label": _split(LABELS),
        "task": _split(TASKS), "item": _split(ITEMS), "message": _split(MESSAGES),
        "word": _split(WORDS),
        "temperature": [f"{say(t)} degrees" for t in range(60, 81)] + [say(t) for t in range(16, 27)],
        "degrees": [f"{say(t)} degrees" for t in range(1, 6)] + ["a degree", "a couple of degrees"],
        "level": [f"{say(p)} percent" for p in range(10, 101, 10)] + [say(v) for v in range(1, 11)]
        + ["half", "max", "maximum", "minimum"],
        "number": [say(v) for v in range(2, 100)],
    }
    return {slot: tuple(dict.fromkeys(vals)) for slot, vals in values.items()}


def fill(template: str, rng: random.Random, values: dict[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Expand one template: resolve `(a|b)` groups, fill `{slot}`s. Returns (words, BIO tags)."""
    text = ALT_RE.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    words: list[str] = []
    tags: list[str] = []
    for token in text.split():
        match = SLOT_RE.fullmatch(token)
        if match is None:
            words.append(token)
            tags.append("O")
            continue
        slot, table = match.group(1), match.group(2) or match.group(1)
        value = rng.choice(values[table]).split()
        words += value
        tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 1)
    return words, tags


def _intent_pool(intent: str, cap: int, rng: random.Random, values: dict, seen: set[str]) -> list[Sentence]:
    """Up to `cap` new sentences of one intent, none in `seen` (which grows); stops early once
    draws keep repeating. A text another intent already made counts as a repeat, so no text
    carries two intents."""
    out: list[Sentence] = []
    misses = 0
    while len(out) < cap and misses < MAX_MISSES:
        words, tags = fill(rng.choice(TEMPLATES[intent]), rng, values)
        text = " ".join(words)
        if text in seen:
            misses += 1
            continue
        misses = 0
        seen.add(text)
        out.append(Sentence(tuple(words), tuple(tags), intent, True, SOURCE))
    return out


def generate_assistant(seed: int = 0, n: int | None = None) -> list[Sentence]:
    """Distinct directed assistant sentences, shuffled, deterministic for `seed`.

    Args:
        seed: drives names, template choice and slot values.
        n: exactly this many sentences, balanced over intents; None gives all the pool holds
            (up to PER_INTENT_CAP per intent).
    Raises:
        ValueError: `n` is above MAX_N or more than the templates can make distinct.
    """
    if n is not None and not 0 <= n <= MAX_N:
        raise ValueError(f"n must be in 0..{MAX_N} distinct assistant sentences, got {n}")
    rng = random.Random(seed)
    values = slot_values(seed)
    cap = PER_INTENT_CAP if n is None else max(PER_INTENT_CAP, -(-n // len(TEMPLATES)))
    seen: set[str] = set()
    pools = [_intent_pool(intent, cap, rng, values, seen) for intent in TEMPLATES]
    if n is None:
        out = [s for pool in pools for s in pool]
    else:
        out = _round_robin(pools, n)
    rng.shuffle(out)
    return out


def _round_robin(pools: list[list[Sentence]], n: int) -> list[Sentence]:
    """Take `n` sentences one intent at a time, so small intents run out last."""
    total = sum(map(len, pools))
    if n > total:
        raise ValueError(f"asked for {n} assistant sentences, the templates make only {total} distinct")
    out: list[Sentence] = []
    for i in range(max(map(len, pools))):
        out += [pool[i] for pool in pools if i < len(pool)]
        if len(out) >= n:
            break
    return out[:n]
