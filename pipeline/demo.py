"""The synthetic production warehouse behind `alignloop demo`.

Writes a DuckDB file shaped like a chat assistant's logs (generations + thumbs and A/B comparisons),
with answers whose quality is known, labels flipped at a chosen noise rate, and a few broken rows.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from alignloop.errors import ConfigError

DEMO_END = datetime(2026, 11, 1)
DEFAULT_SEED = 0
DEFAULT_N_PROMPTS = 300
DEFAULT_N_FEEDBACK = 6000
DEFAULT_WEEKS = 6
DEFAULT_NOISE_RATE = 0.1
DEFAULT_MALFORMED_RATE = 0.005
DEFAULT_PATH = Path("demo/warehouse.duckdb")

Quality = Literal["good", "rambling", "wrong", "rude"]
# Best first: users prefer a correct concise answer, then a correct but long-winded one, then a polite
# wrong one, and a dismissive one least of all.
QUALITY_ORDER: tuple[Quality, ...] = ("good", "rambling", "wrong", "rude")
# How often the assistant produces each kind of answer; most answers are fine, as in production.
QUALITY_WEIGHTS = (0.5, 0.2, 0.15, 0.15)
THUMB_SHARE = 0.55
N_USERS = 400
# Most generations never get feedback: this many unrated generations per rated one.
UNRATED_PER_RATED = 1.5
MAX_FEEDBACK_DELAY = timedelta(days=2)

GENERATIONS_DDL = """
CREATE TABLE generations (
    request_id VARCHAR PRIMARY KEY, ts TIMESTAMP, user_id VARCHAR, model_version VARCHAR,
    messages VARCHAR, response VARCHAR
)"""
FEEDBACK_DDL = """
CREATE TABLE feedback_events (
    event_id VARCHAR PRIMARY KEY, request_id VARCHAR, ts TIMESTAMP, user_id VARCHAR, kind VARCHAR,
    value VARCHAR, other_request_id VARCHAR
)"""
GENERATIONS_SCHEMA = pa.schema(
    [("request_id", pa.string()), ("ts", pa.timestamp("us")), ("user_id", pa.string()),
     ("model_version", pa.string()), ("messages", pa.string()), ("response", pa.string())]
)
FEEDBACK_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("request_id", pa.string()), ("ts", pa.timestamp("us")),
     ("user_id", pa.string()), ("kind", pa.string()), ("value", pa.string()),
     ("other_request_id", pa.string())]
)


@dataclass(frozen=True)
class DemoSummary:
    """What `write_demo_warehouse` wrote; feedback counts include malformed rows."""

    path: Path
    n_generations: int
    n_feedback: int
    n_thumbs: int
    n_comparisons: int
    n_prompts: int
    start: datetime
    end: datetime
    noise_rate: float


@dataclass(frozen=True)
class DemoPrompt:
    """One conversation users send, and the answer the assistant may give at each quality."""

    messages: tuple[dict[str, str], ...]
    answers: dict[Quality, str]

    @property
    def messages_json(self) -> str:
        return json.dumps(list(self.messages), ensure_ascii=False)


@dataclass(frozen=True)
class _Fact:
    """A question with a programmatically known answer; `*_short` fit the phrase "it's {short}"."""

    question: str
    correct: str
    wrong: str
    correct_short: str
    wrong_short: str


# --- task families -------------------------------------------------------------------------------

CAPITALS = [  # (country, capital, a plausible wrong answer)
    ("France", "Paris", "Lyon"), ("Germany", "Berlin", "Munich"), ("Italy", "Rome", "Milan"),
    ("Spain", "Madrid", "Barcelona"), ("Portugal", "Lisbon", "Porto"), ("Japan", "Tokyo", "Osaka"),
    ("China", "Beijing", "Shanghai"), ("India", "New Delhi", "Mumbai"), ("Canada", "Ottawa", "Toronto"),
    ("Australia", "Canberra", "Sydney"), ("Brazil", "Brasilia", "Rio de Janeiro"),
    ("Turkey", "Ankara", "Istanbul"), ("Switzerland", "Bern", "Zurich"), ("Egypt", "Cairo", "Alexandria"),
    ("Kenya", "Nairobi", "Mombasa"), ("Nigeria", "Abuja", "Lagos"), ("Morocco", "Rabat", "Casablanca"),
    ("Vietnam", "Hanoi", "Ho Chi Minh City"), ("Pakistan", "Islamabad", "Karachi"),
    ("New Zealand", "Wellington", "Auckland"), ("South Korea", "Seoul", "Busan"),
    ("Mexico", "Mexico City", "Guadalajara"), ("Argentina", "Buenos Aires", "Cordoba"),
    ("Chile", "Santiago", "Valparaiso"), ("Peru", "Lima", "Cusco"), ("Colombia", "Bogota", "Medellin"),
    ("Norway", "Oslo", "Bergen"), ("Sweden", "Stockholm", "Gothenburg"),
    ("Finland", "Helsinki", "Tampere"), ("Poland", "Warsaw", "Krakow"), ("Greece", "Athens", "Thessaloniki"),
    ("Netherlands", "Amsterdam", "Rotterdam"), ("Belgium", "Brussels", "Antwerp"),
    ("Austria", "Vienna", "Salzburg"), ("Ireland", "Dublin", "Cork"), ("Scotland", "Edinburgh", "Glasgow"),
    ("Russia", "Moscow", "Saint Petersburg"), ("Thailand", "Bangkok", "Chiang Mai"),
    ("Indonesia", "Jakarta", "Surabaya"), ("South Africa", "Pretoria", "Johannesburg"),
]
ANTONYMS = [  # (word, opposite, a plausible wrong answer)
    ("hot", "cold", "warm"), ("big", "small", "huge"), ("fast", "slow", "quick"), ("happy", "sad", "glad"),
    ("open", "closed", "wide"), ("early", "late", "soon"), ("light", "dark", "bright"),
    ("strong", "weak", "tough"), ("rich", "poor", "wealthy"), ("full", "empty", "whole"),
    ("ancient", "modern", "old"), ("arrive", "depart", "reach"), ("accept", "refuse", "take"),
    ("generous", "stingy", "kind"), ("brave", "cowardly", "bold"), ("noisy", "quiet", "loud"),
    ("hard", "soft", "firm"), ("wet", "dry", "damp"), ("begin", "end", "start"), ("win", "lose", "gain"),
    ("above", "below", "over"), ("increase", "decrease", "grow"), ("friend", "enemy", "ally"),
    ("expensive", "cheap", "costly"), ("asleep", "awake", "tired"), ("remember", "forget", "recall"),
    ("heavy", "light", "dense"), ("tall", "short", "high"), ("clean", "dirty", "tidy"),
    ("true", "false", "real"),
]
DEFINITIONS = [  # (term, definition, a plausible wrong definition)
    ("photosynthesis", "how plants turn sunlight, water and carbon dioxide into food",
     "how animals turn food into energy"),
    ("a noun", "a word that names a person, place, thing or idea", "a word that describes an action"),
    ("a verb", "a word that describes an action or a state", "a word that names a place"),
    ("gravity", "the force that pulls objects toward each other", "the force that pushes magnets apart"),
    ("evaporation", "when a liquid turns into a gas", "when a gas turns into a liquid"),
    ("a prime number", "a number greater than 1 divisible only by 1 and itself",
     "a number divisible by 2"),
    ("a synonym", "a word with the same meaning as another word", "a word with the opposite meaning"),
    ("a mammal", "a warm-blooded animal that feeds its young with milk", "an animal that lays eggs in water"),
    ("inflation", "a general rise in prices over time", "a general fall in prices over time"),
    ("a peninsula", "land surrounded by water on three sides", "land surrounded by water on all sides"),
    ("an herbivore", "an animal that eats only plants", "an animal that eats only meat"),
    ("a haiku", "a short poem with three lines of five, seven and five syllables",
     "a long poem with fourteen lines"),
    ("a budget", "a plan for how to spend and save money", "a record of money already spent"),
    ("erosion", "the wearing away of land by wind or water", "the building up of land by volcanoes"),
    ("a democracy", "a system where citizens choose their government by voting",
     "a system ruled by one king"),
    ("an orbit", "the curved path of an object around a star or planet", "the spin of a planet on its axis"),
    ("a fraction", "a part of a whole, written like 3/4", "a number with no decimal part"),
    ("humidity", "the amount of water vapour in the air", "the temperature of the air"),
    ("a metaphor", "a comparison that says one thing is another", "a comparison that uses like or as"),
    ("an atom", "the smallest unit of a chemical element", "the largest part of a molecule"),
]
WORDS = [
    "garden", "planet", "window", "orange", "pencil", "bridge", "rocket", "silver", "castle", "market",
    "elephant", "library", "journey", "blanket", "captain", "whisper", "holiday", "kitchen", "mountain",
    "sandwich", "umbrella", "dolphin", "harvest", "lantern", "picture", "thunder", "village", "balloon",
    "compass", "diamond", "feather", "giraffe", "island", "jacket", "monkey", "notebook", "pyramid",
    "rainbow", "tomato", "volcano",
]
# (unit, target unit, true factor, the factor people confuse it with)
CONVERSIONS = [
    ("kilometers", "meters", 1000, 100), ("kilograms", "grams", 1000, 100), ("hours", "minutes", 60, 100),
    ("minutes", "seconds", 60, 100), ("feet", "inches", 12, 10), ("meters", "centimeters", 100, 1000),
    ("days", "hours", 24, 12), ("liters", "milliliters", 1000, 100), ("weeks", "days", 7, 5),
    ("yards", "feet", 3, 2),
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _arithmetic(rng: random.Random) -> _Fact:
    symbol = rng.choice("+-×")
    if symbol == "×":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    else:
        a = rng.randint(10, 99)
        b = rng.randint(2, a - 1)  # keeps differences positive
    result = {"+": a + b, "-": a - b, "×": a * b}[symbol]
    wrong = result + rng.choice([-10, -2, -1, 1, 2, 10])
    expression = f"{a} {symbol} {b}"
    template = rng.choice(["What is {e}?", "Can you work out {e} for me?", "Quick one: {e}?"])
    return _Fact(template.format(e=expression), f"{expression} = {result}", f"{expression} = {wrong}",
                 str(result), str(wrong))


def _capital(rng: random.Random) -> _Fact:
    country, capital, wrong = rng.choice(CAPITALS)
    template = rng.choice(["What is the capital of {c}?", "Which city is the capital of {c}?"])
    return _Fact(template.format(c=country), f"The capital of {country} is {capital}",
                 f"The capital of {country} is {wrong}", capital, wrong)


def _conversion(rng: random.Random) -> _Fact:
    unit, target, factor, confused = rng.choice(CONVERSIONS)
    amount = rng.randint(2, 15)
    template = rng.choice(["How many {t} are in {n} {u}?", "Convert {n} {u} to {t}, please."])
    right, slip = f"{amount * factor} {target}", f"{amount * confused} {target}"
    return _Fact(template.format(t=target, n=amount, u=unit), f"{amount} {unit} is {right}",
                 f"{amount} {unit} is {slip}", right, slip)


def _word_play(rng: random.Random) -> _Fact:
    word = rng.choice(WORDS)
    if rng.random() < 0.5:
        backwards = word[::-1]
        # A near miss: two different neighbouring letters swapped, the kind of slip a model makes.
        i = rng.choice([i for i in range(len(word) - 1) if backwards[i] != backwards[i + 1]])
        slip = backwards[:i] + backwards[i + 1] + backwards[i] + backwards[i + 2:]
        return _Fact(f"Can you spell '{word}' backwards?", f"'{word}' backwards is '{backwards}'",
                     f"'{word}' backwards is '{slip}'", f"'{backwards}'", f"'{slip}'")
    off = len(word) + rng.choice([-1, 1])
    return _Fact(f"How many letters are in the word '{word}'?", f"The word '{word}' has {len(word)} letters",
                 f"The word '{word}' has {off} letters", f"{len(word)} letters", f"{off} letters")


def _antonym(rng: random.Random) -> _Fact:
    word, opposite, wrong = rng.choice(ANTONYMS)
    template = rng.choice(["What is the opposite of '{w}'?", "Give me an antonym for '{w}'."])
    return _Fact(template.format(w=word), f"The opposite of '{word}' is '{opposite}'",
                 f"The opposite of '{word}' is '{wrong}'", f"'{opposite}'", f"'{wrong}'")


def _definition(rng: random.Random) -> _Fact:
    term, meaning, wrong = rng.choice(DEFINITIONS)
    template = rng.choice(["What is {t}?", "In one sentence, what is {t}?"])
    subject = term[0].upper() + term[1:]
    return _Fact(template.format(t=term), f"{subject} is {meaning}", f"{subject} is {wrong}", meaning, wrong)


def _weekday(rng: random.Random) -> _Fact:
    today, days = rng.randrange(7), rng.randint(2, 20)
    if rng.random() < 0.5:
        answer, slip = WEEKDAYS[(today + days) % 7], WEEKDAYS[(today + days + 1) % 7]
        return _Fact(f"If today is {WEEKDAYS[today]}, what day will it be in {days} days?",
                     f"In {days} days it will be {answer}", f"In {days} days it will be {slip}", answer, slip)
    answer, slip = WEEKDAYS[(today - days) % 7], WEEKDAYS[(today - days - 1) % 7]
    return _Fact(f"If today is {WEEKDAYS[today]}, what day was it {days} days ago?",
                 f"{days} days ago it was {answer}", f"{days} days ago it was {slip}", answer, slip)


TASK_FAMILIES: tuple[Callable[[random.Random], _Fact], ...] = (
    _arithmetic, _capital, _conversion, _word_play, _antonym, _definition, _weekday,
)

# --- answers at each quality ---------------------------------------------------------------------

POLITE_CLOSERS = ["Happy to help!", "Hope that helps!", "Let me know if you need anything else.", ""]
# Rambling answers restate the question before getting to the point, as long-winded assistants do.
# Copying the question is cheap for a language model, so a base model scores these answers highly
# and learns to dislike them only from the feedback: the signal the demo's training can show.
RAMBLING = [
    "{question} That is the question. {question} Let me think about it. {question} Well, {statement}.",
    "You asked: {question} So, the question is: {question} Okay. {question} I believe {statement}.",
    "{question} Good question. To restate it: {question} Thinking it over: {question} So {statement}.",
]
RUDE = [
    "Ugh, obviously it's {short}. Look it up yourself next time.",
    "Seriously? It's {short}. Even a child knows that.",
    "It's {short}. Not sure why you needed to bother me with something this basic.",
]
GREETINGS = [
    ("Hi there!", "Hello! What can I help you with today?"),
    ("Hey, I have a question.", "Sure, go ahead. What would you like to know?"),
    ("Good morning!", "Good morning! How can I help?"),
]
SYSTEM_PROMPT = "You are a friendly, concise assistant."


# The product's house style puts the short answer first ("Short answer: 121. 11 × 11 = 121."). Users
# like it, and most good answers are written that way; now and then a wrong answer is too. It is the part
# of the signal a few LoRA steps can learn and carry to prompts never seen, because it does not depend on
# the question (whether 11 × 11 is 121 does). A base model does not expect a reply to open this way, so
# its likelihood leans against the answers users prefer: there is room to gain.
HOUSE_STYLE = "Short answer: {short}. {statement}."
HOUSE_STYLE_RATE: dict[Quality, float] = {"good": 0.85, "wrong": 0.1}


def _styled(quality: Quality, short: str, statement: str, rng: random.Random) -> str:
    closer = rng.choice(POLITE_CLOSERS)
    if rng.random() < HOUSE_STYLE_RATE[quality]:
        return f"{HOUSE_STYLE.format(short=short, statement=statement)} {closer}".strip()
    return f"{statement}. {closer}".strip()


def _answers(fact: _Fact, rng: random.Random) -> dict[Quality, str]:
    # Rude answers are usually right but sometimes wrong too: rudeness, not correctness, sinks them.
    rude_short = fact.correct_short if rng.random() < 0.75 else fact.wrong_short
    statement = fact.correct[0].lower() + fact.correct[1:]  # it continues a sentence
    return {
        "good": _styled("good", fact.correct_short, fact.correct, rng),
        "rambling": rng.choice(RAMBLING).format(question=fact.question, statement=statement),
        "wrong": _styled("wrong", fact.wrong_short, fact.wrong, rng),
        "rude": rng.choice(RUDE).format(short=rude_short),
    }


def build_prompts(seed: int, n_prompts: int) -> list[DemoPrompt]:
    """The demo's prompt catalogue: `n_prompts` distinct conversations with an answer pool each.

    Seeded on its own so tests and evaluations can rebuild it to know each response's quality.
    """
    rng = random.Random(f"alignloop-demo-prompts-{seed}")
    prompts: list[DemoPrompt] = []
    seen: set[str] = set()
    for _ in range(50 * n_prompts):
        if len(prompts) == n_prompts:
            break
        fact = rng.choice(TASK_FAMILIES)(rng)
        if fact.question in seen:
            continue
        seen.add(fact.question)
        messages: list[dict[str, str]] = []
        if rng.random() < 0.05:
            messages.append({"role": "system", "content": SYSTEM_PROMPT})
        if rng.random() < 0.25:
            earlier = rng.choice(TASK_FAMILIES)(rng)
            if rng.random() < 0.5 or earlier.question == fact.question:
                hello, reply = rng.choice(GREETINGS)
            else:  # an earlier question in the same chat, answered well
                hello, reply = earlier.question, f"{earlier.correct}."
            messages += [{"role": "user", "content": hello}, {"role": "assistant", "content": reply}]
        messages.append({"role": "user", "content": fact.question})
        prompts.append(DemoPrompt(tuple(messages), _answers(fact, rng)))
    if len(prompts) < n_prompts:
        raise ConfigError(f"n_prompts={n_prompts}: the demo templates ran out of distinct prompts; use fewer")
    return prompts


# --- time, users, versions -----------------------------------------------------------------------


def _hour_weights(start: datetime, hours: int) -> list[float]:
    """Traffic per hour: busy weekday daytimes, quiet nights and weekends."""
    weights = []
    for h in range(hours):
        moment = start + timedelta(hours=h)
        daytime = 1.0 if 8 <= moment.hour < 20 else 0.25 if 6 <= moment.hour < 23 else 0.08
        weights.append(daytime * (0.6 if moment.weekday() >= 5 else 1.0))
    return weights


def _feedback_delay(rng: random.Random) -> timedelta:
    """Most people react within minutes; some come back hours or a day or two later."""
    if rng.random() < 0.1:
        seconds = rng.uniform(3600, MAX_FEEDBACK_DELAY.total_seconds())
    else:
        seconds = min(rng.lognormvariate(math.log(90), 1.5), 3600)
    return timedelta(seconds=max(2, round(seconds)))


def _model_version(ts: datetime, rng: random.Random) -> str:
    """A new model ships on the first of each month; for three days half the traffic stays on the old one."""
    if ts.day <= 3 and rng.random() < 0.5:
        ts = ts.replace(day=1) - timedelta(days=1)
    return f"chat-{ts:%Y-%m}"


def _new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --- the warehouse -------------------------------------------------------------------------------


def write_demo_warehouse(
    path: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    n_prompts: int = DEFAULT_N_PROMPTS,
    n_feedback: int = DEFAULT_N_FEEDBACK,
    weeks: int = DEFAULT_WEEKS,
    noise_rate: float = DEFAULT_NOISE_RATE,
    malformed_rate: float = DEFAULT_MALFORMED_RATE,
    end: datetime = DEMO_END,
) -> DemoSummary:
    """(Re)create the demo warehouse at `path`: tables `generations` and `feedback_events`.

    Thumbs say 'up' to good answers and 'down' to the rest; comparisons prefer the answer higher in
    QUALITY_ORDER. Each label is then flipped with probability `noise_rate`, and a share
    `malformed_rate` of events is broken as logs break (NULL or unknown thumb, comparison missing its
    other request). Same arguments, same rows.
    """
    for name, rate in (("noise_rate", noise_rate), ("malformed_rate", malformed_rate)):
        if not 0 <= rate <= 1:
            raise ConfigError(f"{name}={rate}: must be a probability between 0 and 1")
    for name, count in (("n_prompts", n_prompts), ("n_feedback", n_feedback), ("weeks", weeks)):
        if count < 1:
            raise ConfigError(f"{name}={count}: must be at least 1")
    if end.tzinfo is not None:  # the tables hold naive UTC timestamps
        end = end.astimezone(UTC).replace(tzinfo=None)
    start = end - timedelta(weeks=weeks)
    traffic = _Traffic(seed, n_prompts, start, weeks)
    feedback = _feedback_events(traffic, n_feedback, noise_rate, malformed_rate)
    n_rated = len(traffic.generations)
    for ts in traffic.times(round(UNRATED_PER_RATED * n_rated)):
        prompt, quality, user = traffic.prompt(), traffic.quality(), traffic.user()
        traffic.generate(prompt, quality, ts, user, _model_version(ts, traffic.rng))

    generations = sorted(traffic.generations, key=lambda row: (row[1], row[0]))
    feedback.sort(key=lambda row: (row[2], row[0]))
    path = Path(path)
    _write_tables(path, generations, feedback)
    n_thumbs = sum(1 for row in feedback if row[4] == "thumb")
    return DemoSummary(
        path=path, n_generations=len(generations), n_feedback=len(feedback), n_thumbs=n_thumbs,
        n_comparisons=len(feedback) - n_thumbs, n_prompts=n_prompts, start=start, end=end,
        noise_rate=noise_rate,
    )


class _Traffic:
    """Who asks what, and when: the seeded draws behind the demo's rows (every draw comes from one
    generator, in a fixed order, so the same arguments give the same rows), and the generations so far."""

    def __init__(self, seed: int, n_prompts: int, start: datetime, weeks: int) -> None:
        self.rng = random.Random(seed)
        self.prompts = build_prompts(seed, n_prompts)
        self.users = [f"u_{i:05d}" for i in range(N_USERS)]
        self.user_cum_weights = list(accumulate(1 / (rank + 1) ** 0.7 for rank in range(N_USERS)))  # heavy users
        self.prompt_cum_weights = list(accumulate(1 / math.sqrt(rank + 1) for rank in range(n_prompts)))  # popular
        self.start = start
        self.hours = weeks * 7 * 24
        self.hour_cum_weights = list(accumulate(_hour_weights(start, self.hours)))
        self.generations: list[tuple[str, datetime, str, str, str, str]] = []

    def times(self, k: int) -> list[datetime]:
        picked = self.rng.choices(range(self.hours), cum_weights=self.hour_cum_weights, k=k)
        return sorted(self.start + timedelta(hours=h, seconds=self.rng.randrange(3600)) for h in picked)

    def user(self) -> str:
        return self.rng.choices(self.users, cum_weights=self.user_cum_weights)[0]

    def prompt(self) -> DemoPrompt:
        return self.rng.choices(self.prompts, cum_weights=self.prompt_cum_weights)[0]

    def quality(self) -> Quality:
        return self.rng.choices(QUALITY_ORDER, weights=QUALITY_WEIGHTS)[0]

    def generate(self, prompt: DemoPrompt, quality: Quality, ts: datetime, user: str, version: str) -> str:
        request_id = _new_id(self.rng)
        self.generations.append((request_id, ts, user, version, prompt.messages_json, prompt.answers[quality]))
        return request_id


def _feedback_events(traffic: _Traffic, n_feedback: int, noise_rate: float, malformed_rate: float
                     ) -> list[tuple[str, str, datetime, str, str, str | None, str | None]]:
    """The feedback events, each on generations made for it shortly before: a thumb on one answer, or an
    A/B comparison of two; a label flipped with probability noise_rate, a share malformed_rate broken."""
    rng = traffic.rng
    feedback: list[tuple[str, str, datetime, str, str, str | None, str | None]] = []
    malformed = set(rng.sample(range(n_feedback), round(malformed_rate * n_feedback)))
    for index, feedback_ts in enumerate(traffic.times(n_feedback)):
        generation_ts = max(traffic.start, feedback_ts - _feedback_delay(rng))
        user = traffic.user()
        prompt = traffic.prompt()
        version = _model_version(generation_ts, rng)
        flipped = rng.random() < noise_rate
        if rng.random() < THUMB_SHARE:
            quality = traffic.quality()
            request_id = traffic.generate(prompt, quality, generation_ts, user, version)
            value: str | None = "up" if (quality == "good") != flipped else "down"
            if index in malformed:
                value = rng.choice([None, "meh"])
            feedback.append((_new_id(rng), request_id, feedback_ts, user, "thumb", value, None))
            continue
        # An A/B test: the same user sees two different answers to the same conversation.
        first, second = _two_qualities(rng)
        better, worse = sorted((first, second), key=QUALITY_ORDER.index)
        a_id = traffic.generate(prompt, first, generation_ts, user, version)
        b_id: str | None = traffic.generate(prompt, second, generation_ts, user, version)
        winner = worse if flipped else better
        value = "a" if winner == first else "b"
        if index in malformed:
            b_id = None
        feedback.append((_new_id(rng), a_id, feedback_ts, user, "comparison", value, b_id))
    return feedback


def _two_qualities(rng: random.Random) -> tuple[Quality, Quality]:
    """Two different answer qualities in display order, which A/B tests randomise."""
    first = rng.choices(QUALITY_ORDER, weights=QUALITY_WEIGHTS)[0]
    rest = [q for q in QUALITY_ORDER if q != first]
    second = rng.choices(rest, weights=[QUALITY_WEIGHTS[QUALITY_ORDER.index(q)] for q in rest])[0]
    return (first, second) if rng.random() < 0.5 else (second, first)


def _write_tables(path: Path, generations: list[tuple], feedback: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".wal")):  # a leftover WAL would replay old rows
        stale.unlink(missing_ok=True)
    generation_table = pa.Table.from_arrays([list(c) for c in zip(*generations, strict=True)], schema=GENERATIONS_SCHEMA)
    feedback_table = pa.Table.from_arrays([list(c) for c in zip(*feedback, strict=True)], schema=FEEDBACK_SCHEMA)
    with duckdb.connect(str(path)) as con:
        con.execute(GENERATIONS_DDL)
        con.execute(FEEDBACK_DDL)
        con.register("generation_rows", generation_table)
        con.register("feedback_rows", feedback_table)
        con.execute("INSERT INTO generations SELECT * FROM generation_rows")
        con.execute("INSERT INTO feedback_events SELECT * FROM feedback_rows")


def write_demo_config(workdir: str | Path, *, tiny: bool = False) -> Path:
    """Write workdir/alignloop.yaml for the demo warehouse: SmolLM2 on CPU in minutes, or the tiny model."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # SmolLM2's steps and learning rate were chosen on validation prompts carved from the training prompts,
    # never on the held-out pairs: `python -m alignloop.demo_tuning` (BENCHMARKS.md, "Demo settings"). They
    # were chosen for DPO, so the demo asks for DPO; left to itself the planner would train IPO on this data.
    # The SFT term on the chosen answers keeps the model's own answers from degenerating while it learns the
    # preferences: of the settings tried, the only one whose answers passed the gate's degenerate-answer check.
    training = ("  method: dpo\n  max_steps: 8\n  max_length: 128\n" if tiny
                else "  method: dpo\n  max_steps: 24\n  learning_rate: 0.0003\n  sft_weight: 1.0\n"
                     "  max_length: 160\n")
    # Every held-out pair is scored: a capped sample leaves the gain inside the noise. The generation checks
    # the gate reads (judged win rate, KL, length drift, degenerate answers) run on 32 held-out prompts,
    # above promotion.min_prompts, so they decide instead of staying unmeasured; answers are kept short. The
    # judge is the probe (linear heads on the reference's features, cross-fitted on held-out prompts): on
    # two CPU cores a reward model fitted per run costs more than the training. Its own held-out accuracy
    # says whether its win rate can be trusted. The tiny demo only checks the wiring: its generation checks
    # stay unmeasured.
    evaluation = ("  generation_prompts: 4\n  max_new_tokens: 16\n  judge:\n    kind: probe\n" if tiny
                  else "  generation_prompts: 32\n  max_new_tokens: 24\n  judge:\n    kind: probe\n")
    base_model = "  tiny: true\n" if tiny else "  packaged: smollm2-135m-instruct\n"
    text = (
        "# alignloop demo: the synthetic warehouse beside this file, a local store and MLflow.\n"
        "target: alignloop-demo\n"
        "sources:\n"
        "  - name: demo_chat\n"
        "    connector: duckdb\n"
        "    options:\n"
        "      path: warehouse.duckdb\n"
        "    shape: events\n"
        f"base_model:\n{base_model}"
        f"training:\n{training}"
        f"evaluation:\n{evaluation}"
    )
    path = workdir / "alignloop.yaml"
    path.write_text(text)
    return path


if __name__ == "__main__":
    summary = write_demo_warehouse(DEFAULT_PATH)
    for field, value in vars(summary).items():
        print(f"{field:>14}: {value}")
