"""Synthetic IFEval-style prompts and Multi-IF-style conversations, phrased by IFEval's own checkers."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence

from treecot.tasks.base import make_problem
from treecot.tasks.instructions.checkers import ifeval_conflicts, ifeval_registry
from treecot.tasks.instructions.records import instruction_meta, instruction_reference

# --------------------------------------------------------------------------- synthetic IFEval-style prompts

#: Writing-task templates; ``{}`` is replaced by a topic.
BASE_TASK_FORMS: tuple[str, ...] = (
    "Write a short blog post about {}.",
    "Write a poem about {}.",
    "Write a short story involving {}.",
    "Write an email to a friend about {}.",
    "Write a product description for a new gadget related to {}.",
    "Write a short essay on {}.",
    "Write a letter to the editor of a local newspaper about {}.",
    "Write a speech for a school assembly about {}.",
    "Write a limerick about {}.",
    "Write a riddle whose answer is connected to {}.",
    "Write a travel guide entry inspired by {}.",
    "Write a cover letter for a job that involves {}.",
    "Write a movie plot summary centred on {}.",
    "Write a dialogue between two friends discussing {}.",
    "Write a news article about a surprising discovery involving {}.",
    "Write a rap song about {}.",
    "Write a persuasive advertisement about {}.",
    "Write a journal entry about a day spent thinking about {}.",
    "Write a review of a fictional book about {}.",
    "Write a set of tips for beginners interested in {}.",
    "Explain {} to a ten-year-old.",
    "Describe {} as if you were a tour guide.",
    "Summarize the history of {} for a general audience.",
    "Write a pitch for a startup focused on {}.",
    "Write a social media post announcing an event about {}.",
)

#: Topics for `BASE_TASK_FORMS`.
BASE_TASK_TOPICS: tuple[str, ...] = (
    "the ocean",
    "autumn leaves",
    "a lost umbrella",
    "learning to cook",
    "city gardens",
    "the first day at a new job",
    "electric bicycles",
    "a rainy afternoon",
    "honey bees",
    "the night sky",
    "an old lighthouse",
    "board games",
    "recycling",
    "a mountain village",
    "public libraries",
    "a friendly robot",
    "coffee",
    "the history of bridges",
    "learning a new language",
    "a family picnic",
    "winter sports",
    "a small bakery",
    "volcanoes",
    "time management",
    "a street musician",
    "the moon landing",
    "houseplants",
    "a long train journey",
    "desert wildlife",
    "chess",
    "kindness",
    "a forgotten key",
    "solar power",
    "paper airplanes",
    "a birthday surprise",
    "the importance of sleep",
    "a village festival",
    "penguins",
    "the invention of the printing press",
    "a walk in the forest",
)


def base_tasks() -> list[str]:
    """Every base writing task the generator draws from (forms × topics)."""
    return [form.format(topic) for form in BASE_TASK_FORMS for topic in BASE_TASK_TOPICS]


_RELATIONS = ("less than", "at least")
#: Response languages offered by `language:response_language` (ISO 639-1 codes langdetect returns).
_LANGUAGES = ("es", "fr", "de", "it", "pt")


def _word_list() -> list[str]:
    from if_verifiable.ifeval import instructions_util

    return list(instructions_util.WORD_LIST)


def _fresh_words(rng: random.Random, used: set[str], k: int) -> list[str]:
    pool = [w for w in _word_list() if w not in used]
    words = rng.sample(pool, k)
    used.update(words)
    return words


def _ending_options() -> tuple[str, ...]:
    from if_verifiable.ifeval import instructions

    return tuple(instructions._ENDING_OPTIONS)


Sampler = Callable[[random.Random, set], dict]

#: For each IFEval instruction id, how treecot samples its kwargs (explicitly, with its own RNG, so
#: generation never touches the global `random` state). Ranges are kept modest for small models.
#: Keyword-like kwargs draw from IFEval's WORD_LIST without repeats inside one prompt.
KWARG_SAMPLERS: dict[str, Sampler] = {
    "keywords:existence": lambda rng, used: {"keywords": _fresh_words(rng, used, rng.randint(1, 3))},
    "keywords:frequency": lambda rng, used: {
        "keyword": _fresh_words(rng, used, 1)[0],
        "frequency": rng.randint(2, 4),
        "relation": rng.choice(_RELATIONS),
    },
    "keywords:forbidden_words": lambda rng, used: {
        "forbidden_words": _fresh_words(rng, used, rng.randint(2, 3))
    },
    "keywords:letter_frequency": lambda rng, used: (
        {"letter": rng.choice("etaoinsrhl"), "let_frequency": rng.randint(3, 12), "let_relation": "at least"}
        if rng.random() < 0.5
        else {"letter": rng.choice("jqxzkv"), "let_frequency": rng.randint(2, 5), "let_relation": "less than"}
    ),
    "language:response_language": lambda rng, used: {"language": rng.choice(_LANGUAGES)},
    "length_constraints:number_sentences": lambda rng, used: (
        {"num_sentences": rng.randint(2, 8), "relation": "at least"}
        if rng.random() < 0.5
        else {"num_sentences": rng.randint(4, 12), "relation": "less than"}
    ),
    "length_constraints:number_paragraphs": lambda rng, used: {"num_paragraphs": rng.randint(2, 5)},
    "length_constraints:number_words": lambda rng, used: (
        {"num_words": rng.randrange(40, 301, 10), "relation": "at least"}
        if rng.random() < 0.5
        else {"num_words": rng.randrange(80, 401, 10), "relation": "less than"}
    ),
    "length_constraints:nth_paragraph_first_word": lambda rng, used: (
        lambda n: {
            "num_paragraphs": n,
            "nth_paragraph": rng.randint(1, n),
            "first_word": _fresh_words(rng, used, 1)[0],
        }
    )(rng.randint(2, 4)),
    "detectable_content:number_placeholders": lambda rng, used: {"num_placeholders": rng.randint(1, 4)},
    "detectable_content:postscript": lambda rng, used: {"postscript_marker": rng.choice(("P.S.", "P.P.S"))},
    "detectable_format:number_bullet_lists": lambda rng, used: {"num_bullets": rng.randint(2, 6)},
    "detectable_format:constrained_response": lambda rng, used: {},
    "detectable_format:number_highlighted_sections": lambda rng, used: {"num_highlights": rng.randint(1, 4)},
    "detectable_format:multiple_sections": lambda rng, used: {
        "section_spliter": rng.choice(("Section", "SECTION")),
        "num_sections": rng.randint(2, 5),
    },
    "detectable_format:json_format": lambda rng, used: {},
    "detectable_format:title": lambda rng, used: {},
    "combination:two_responses": lambda rng, used: {},
    "combination:repeat_prompt": lambda rng, used: {},  # prompt_to_repeat is filled in by the composer
    "startend:end_checker": lambda rng, used: {"end_phrase": rng.choice(_ending_options())},
    "change_case:capital_word_frequency": lambda rng, used: (
        {"capital_frequency": rng.randint(2, 8), "capital_relation": "at least"}
        if rng.random() < 0.5
        else {"capital_frequency": rng.randint(3, 10), "capital_relation": "less than"}
    ),
    "change_case:english_capital": lambda rng, used: {},
    "change_case:english_lowercase": lambda rng, used: {},
    "punctuation:no_comma": lambda rng, used: {},
    "startend:quotation": lambda rng, used: {},
}

#: Instructions that only make sense for a single-turn prompt (they rule out almost everything else,
#: or refer to "the request"); left out of Multi-IF-style conversations.
SINGLE_TURN_ONLY = frozenset(
    {
        "combination:repeat_prompt",
        "combination:two_responses",
        "detectable_format:constrained_response",
        "detectable_format:json_format",
    }
)


def sample_compatible(
    rng: random.Random, k: int, *, pool: Sequence[str] | None = None, chosen: Sequence[str] = ()
) -> list[str]:
    """Up to `k` instruction ids from `pool` (default: all IFEval ids) that conflict neither with each
    other nor with `chosen`, in random order (fewer when the conflicts leave no room)."""
    conflicts = ifeval_conflicts()
    candidates = sorted(pool if pool is not None else KWARG_SAMPLERS)
    rng.shuffle(candidates)
    picked: list[str] = []
    taken = list(chosen)
    for iid in candidates:
        if len(picked) == k:
            break
        if any(iid in conflicts.get(t, ()) or t in conflicts.get(iid, ()) for t in taken):
            continue
        picked.append(iid)
        taken.append(iid)
    return picked


def describe_instructions(
    rng: random.Random, instruction_ids: Sequence[str], used_words: set[str], *, request: str = ""
) -> tuple[list[str], list[dict]]:
    """Sample kwargs for each id and phrase it with its own checker's ``build_description``.

    Returns ``(descriptions, kwargs)`` where each kwargs dict is the checker's ``get_instruction_args()``
    (what IFEval stores and what verification rebuilds the checker from). `request` is what
    ``combination:repeat_prompt`` asks to repeat.
    """
    registry = ifeval_registry()
    descriptions, kwargs_list = [], []
    for iid in instruction_ids:
        kwargs = KWARG_SAMPLERS[iid](rng, used_words)
        if iid == "combination:repeat_prompt":
            kwargs = {"prompt_to_repeat": request}
        checker = registry[iid](iid)
        descriptions.append(checker.build_description(**kwargs).strip())
        kwargs_list.append(dict(checker.get_instruction_args() or {}))
    return descriptions, kwargs_list


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!", ")")) else text + "."


def compose_ifeval_prompt(rng: random.Random, n_instructions: int) -> tuple[str, str, list[str], list[dict]]:
    """One IFEval-style prompt: ``(question, base_task, instruction_ids, kwargs)``."""
    base = rng.choice(base_tasks())
    ids = sample_compatible(rng, n_instructions)
    # repeat_prompt repeats the request *without* its own sentence, so it is phrased last.
    ids.sort(key=lambda i: i == "combination:repeat_prompt")
    used: set[str] = set()
    others = [i for i in ids if i != "combination:repeat_prompt"]
    descriptions, kwargs = describe_instructions(rng, others, used)
    question = " ".join([base, *(_sentence(d) for d in descriptions)])
    if len(others) < len(ids):
        d, kw = describe_instructions(rng, ["combination:repeat_prompt"], used, request=question)
        question = f"{question} {_sentence(d[0])}"
        descriptions += d
        kwargs += kw
        others.append("combination:repeat_prompt")
    return question, base, others, kwargs


def generate_ifeval_problems(
    n: int, *, seed: str | int, split: str, max_instructions: int = 3, exclude: Iterable[str] = ()
) -> list[dict]:
    """`n` distinct synthetic IFEval-style Problems, deterministic in `seed` (independent of the global
    `random` state). Questions in `exclude` (e.g. the test set's) are skipped, so splits stay disjoint."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if max_instructions < 1:
        raise ValueError(f"max_instructions must be >= 1, got {max_instructions}")
    rng = random.Random(f"treecot-ifeval-{seed}")
    seen = set(exclude)
    problems: list[dict] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise RuntimeError(f"could only generate {len(problems)} distinct prompts of the {n} asked for")
        question, base, ids, kwargs = compose_ifeval_prompt(rng, rng.randint(1, max_instructions))
        if question in seen:
            continue
        seen.add(question)
        index = len(problems)
        meta = instruction_meta(
            "synthetic",
            split,
            index,
            f"{seed}:{index}",
            base_task=base,
            n_instructions=len(ids),
            turn_prompts=[question],
        )
        problems.append(
            make_problem("ifeval", question, json.dumps(instruction_reference(ids, kwargs)), meta)
        )
    return problems


#: Lead-ins of the follow-up turns of a generated Multi-IF-style conversation.
FOLLOW_UPS: tuple[str, ...] = (
    "Please rewrite your previous response.",
    "Now revise your answer.",
    "Rewrite the text you just wrote.",
    "Update your response.",
)
KEEP_EARLIER = "Keep following all of the earlier instructions."


def generate_multi_turn_problems(
    n: int, *, seed: str | int, split: str = "test", n_turns: int = 3, exclude: Iterable[str] = ()
) -> list[dict]:
    """`n` synthetic Multi-IF-style conversations of `n_turns` user turns. Turn 1 is an IFEval-style
    prompt with 1–2 instructions; every later turn adds one instruction compatible with all earlier
    ones, which still apply (instruction lists are cumulative, as in Multi-IF)."""
    if n_turns < 1:
        raise ValueError(f"n_turns must be >= 1, got {n_turns}")
    rng = random.Random(f"treecot-multi-if-{seed}")
    pool = sorted(set(KWARG_SAMPLERS) - SINGLE_TURN_ONLY)
    seen = set(exclude)
    problems: list[dict] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise RuntimeError(
                f"could only generate {len(problems)} distinct conversations of the {n} asked for"
            )
        first = rng.randint(1, 2)
        ids = sample_compatible(rng, first + n_turns - 1, pool=pool)
        if len(ids) < first + n_turns - 1:
            continue
        used: set[str] = set()
        descriptions, kwargs = describe_instructions(rng, ids, used)
        base = rng.choice(base_tasks())
        prompts = [" ".join([base, *(_sentence(d) for d in descriptions[:first])])]
        for t in range(1, n_turns):
            d = _sentence(descriptions[first + t - 1])
            prompts.append(f"{rng.choice(FOLLOW_UPS)} {d} {KEEP_EARLIER}")
        if prompts[0] in seen:
            continue
        seen.add(prompts[0])
        turns = [instruction_reference(ids[: first + t], kwargs[: first + t]) for t in range(n_turns)]
        index = len(problems)
        meta = instruction_meta(
            "synthetic",
            split,
            index,
            f"{seed}:{index}",
            base_task=base,
            n_instructions=len(ids),
            turn_prompts=prompts,
        )
        problems.append(make_problem("multi_if", prompts[0], json.dumps(turns), meta))
    return problems
