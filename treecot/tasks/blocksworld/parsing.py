"""Plan parsing: a tolerant reader of the final plan of a model's answer, in English or PDDL.

`parse_plan` finds the one place of a completion that holds the final plan (see its doc); `parse_action`
reads one line; `focus_on_problem` and `resolve_initials` adapt PlanBench-style one-shot continuations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from treecot.tasks.answers import after_thinking, answer_tag
from treecot.tasks.blocksworld.domain import (
    ACTION_ARITY,
    BLOCK_NAME,
    PDDL_ACTION_NAMES,
    PDDL_ACTION_RE,
    Action,
    action_from_pddl_match,
)

_B = r"(?:the\s+)?(?:block\s+)?(?P<{g}>{n})(?:\s+block)?"
_B1 = _B.format(g="x", n=BLOCK_NAME)
_B2 = _B.format(g="y", n=BLOCK_NAME)
_TABLE_RE = r"(?:the\s+)?table"
_ON = r"(?:on\s*to|onto|on|upon|atop)\s+(?:(?:the\s+)?top\s+of\s+)?"
_NL_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("unstack", re.compile(rf"unstack\s+{_B1}\s+(?:(?:from|off)\s+(?:of\s+)?)?(?:{_ON})?{_B2}")),
    ("put-down", re.compile(rf"(?:put|set|place)[\s-]*down\s+{_B1}(?:\s+{_ON}{_TABLE_RE})?")),
    (
        "put-down",
        re.compile(rf"(?:put|set|place)\s+{_B1}\s+(?:down(?:\s+{_ON}{_TABLE_RE})?|{_ON}{_TABLE_RE})"),
    ),
    ("put-down", re.compile(rf"putdown\s+{_B1}")),
    # "put down the red block in an empty space": a place that is no block
    (
        "put-down",
        re.compile(
            rf"(?:put|set|place)[\s-]*down\s+{_B1}\s+(?:(?:in|at|into)\s+(?!.*\b(?:block|top)\b)[a-z ]+|somewhere|anywhere|aside)"
        ),
    ),
    ("pick-up", re.compile(rf"(?:pick[\s-]*up|pickup)\s+{_B1}(?:\s+(?:from|off)\s+{_TABLE_RE})?")),
    ("pick-up", re.compile(rf"pick\s+{_B1}\s+up(?:\s+(?:from|off)\s+{_TABLE_RE})?")),
    ("stack", re.compile(rf"stack\s+{_B1}\s+(?:{_ON})?{_B2}")),
    ("stack", re.compile(rf"(?:put|place|set)\s+{_B1}\s+{_ON}{_B2}")),
]
#: Function-call notation: "Unstack(red, yellow)", "PutDown(red)", "Pick up(yellow)".
_CALL_RE = re.compile(rf"(pick[\s_-]?up|put[\s_-]?down|unstack|stack)\s*\(\s*{_B1}\s*(?:,\s*{_B2}\s*)?\)")
_STOP_NAMES = {"the", "block", "a", "an", "table", "top", "of", "on", "from", "off", "onto", "down", "up"}
#: Pronoun resolved to the block of the previous action ("pick up the red block, then stack it on …").
_PRONOUN = "it"

_PREFIX_RE = re.compile(
    r"^(?:(?:step|action|move)\s*\d+\s*[:.)-]?\s*|(?:next\s+)?action\s*:\s*|\d+\s*[.):-]\s*|\(\d+\)\s*|[-*•>+]+\s*)+"
)
_LEAD_WORDS_RE = re.compile(
    r"^(?:(?:first|firstly|then|next|finally|lastly|and|now|after that|afterwards)\s*,?\s+)+"
)
_SPLIT_RE = re.compile(r"\s*(?:;|,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+(?:then\s+)?|\s+then\s+|\.\s+)\s*")
_ACTION_WORD_RE = re.compile(r"^(?:\(|(?:pick|put|unstack|stack|place|lift|move|grab|drop|take|set)\w*\b)")
_CORE_VERB_RE = re.compile(r"(?:\(|pick\b|pick-?up|put\b|put-?down|unstack\b|stack\b)")
_IGNORED_LINE_RE = re.compile(r"^(?:```\w*|\[/?plan(?: end)?\]|<\/?answer>|[-=*_#]+)$")


def _clean_line(line: str) -> str:
    text = line.strip().lower()
    text = re.sub(r"[`*_]{1,3}(?=\S)|(?<=\S)[`*_]{1,3}", "", text) if "`" in text or "*" in text else text
    text = _PREFIX_RE.sub("", text).strip()
    text = _LEAD_WORDS_RE.sub("", text).strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"(?<=[a-z]) \([a-z]{1,2}\)(?=\W|$)", "", text)  # a block's initial: "the yellow block (Y)"
    return text.rstrip(" .,;:!\\")


def _parse_segment(text: str) -> list[Action] | None:
    """Actions in one cleaned segment, or None if it is not entirely made of actions."""
    if not text:
        return None
    if text.startswith("("):
        pos, actions = 0, []
        while pos < len(text):
            match = PDDL_ACTION_RE.match(text, pos)
            if match is None:
                return None
            try:
                actions.append(action_from_pddl_match(match))
            except ValueError:
                return None
            pos = match.end()
            while pos < len(text) and text[pos] in " ,;":
                pos += 1
        return actions
    call = _CALL_RE.fullmatch(text)
    if call is not None:
        name = PDDL_ACTION_NAMES.get(re.sub(r"[\s_-]", "", call.group(1)), call.group(1))
        args = tuple(g for g in (call.group("x"), call.group("y")) if g)
        if len(args) == ACTION_ARITY[name] and not any(a in _STOP_NAMES for a in args):
            return [Action(name, args)]
        return None
    text = re.sub(r"\s*\((?!\s*(?:pick|put|stack|unstack))[^()]*\)$", "", text).rstrip(" .,;:!")  # "(remark)"
    for name, pattern in _NL_PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        args = tuple(g for g in (match.groupdict().get("x"), match.groupdict().get("y")) if g)
        if any(a in _STOP_NAMES for a in args):
            continue
        return [Action(name, args)]
    # PDDL-like without parentheses: "unstack red blue", "pick-up red"
    tokens = text.split()
    if (
        tokens
        and tokens[0] in PDDL_ACTION_NAMES
        and len(tokens) - 1 == ACTION_ARITY[PDDL_ACTION_NAMES[tokens[0]]]
    ):
        if all(re.fullmatch(BLOCK_NAME, t) and t not in _STOP_NAMES for t in tokens[1:]):
            return [Action(PDDL_ACTION_NAMES[tokens[0]], tuple(tokens[1:]))]
    return None


def parse_action(line: str) -> Action | None:
    """One action from one line ("1. unstack the red block from on top of the blue block", "(pick-up red)").

    Returns None if the line is not exactly one action.
    """
    actions = _parse_line(line)
    return actions[0] if actions is not None and len(actions) == 1 else None


def _resolve_pronouns(actions: list[Action], previous: Action | None) -> list[Action] | None:
    """Replace "it" by the block of the action before; None if there is no such action."""
    resolved: list[Action] = []
    for action in actions:
        if _PRONOUN in action.args:
            if previous is None:
                return None
            action = Action(action.name, tuple(previous.args[0] if a == _PRONOUN else a for a in action.args))
        resolved.append(action)
        previous = action
    return resolved


def _plain_names(actions: list[Action] | None) -> list[Action] | None:
    """Block names written as identifiers, "yellow_block", read as "yellow"."""
    if not actions or not any(a.endswith("block") for action in actions for a in action.args):
        return actions
    return [Action(x.name, tuple(_BLOCK_SUFFIX_RE.sub("", a) or a for a in x.args)) for x in actions]


_BLOCK_SUFFIX_RE = re.compile(r"[_-]block$")


def _parse_line(line: str, previous: Action | None = None) -> list[Action] | None:
    text = _clean_line(line)
    actions = _parse_segment(text)
    if actions is None:
        pieces = [p for p in _SPLIT_RE.split(text) if p]
        if len(pieces) < 2:
            return None
        actions = []
        for piece in pieces:
            sub = _parse_segment(_LEAD_WORDS_RE.sub("", piece).strip(" .,;"))
            if sub is None:
                return None
            actions.extend(sub)
    return _resolve_pronouns(_plain_names(actions) or [], previous)


@dataclass
class ParsedPlan:
    """What `parse_plan` read.

    actions:  the parsed actions, in order.
    unparsed: lines of the plan that look like actions but could not be read, as (step position, line)
              where the position is the 1-based index the line would have had in the plan. Filled for
              plans read from an explicit section (an answer, a ``[PLAN]`` block, a plan heading, "the
              plan is"); always empty for the last-resort reading of free text.
    section:  where the plan was taken from: "answer_tag", "plan_tag", "plan_block", "answer_is" or
              "text"; "thinking" when the output stops inside an unclosed ``<think>`` block.
    """

    actions: list[Action]
    unparsed: list[tuple[int, str]] = field(default_factory=list)
    section: str = "text"

    @property
    def pddl(self) -> list[str]:
        return [a.pddl for a in self.actions]


_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+)?(?:answer|plan)\s+is\s*:?", re.IGNORECASE)
_MAX_ANSWER_IS_TRIES = 4
_PLAN_OPEN_RE = re.compile(r"\[plan\]", re.IGNORECASE)
_PLAN_CLOSE_RE = re.compile(r"\[plan[ _-]?end\]", re.IGNORECASE)
#: List markers: "1.", "1)", "(1)", "Step 1:", "Action 2 -", bullets. Matched after emphasis is removed.
_MARKER_RE = re.compile(
    r"^(?:(?:step|action|move)\s*(?P<n1>\d+)\s*[:.)-]?\s*|(?P<n2>\d+)\s*[.):-]\s*|\((?P<n3>\d+)\)\s*|(?P<bullet>[-*•>+]+)\s+)"
)
#: A heading that announces the plan: "**Actions in the plan:**", "### Plan", "Here is the plan:", …
_PLAN_HEADING_RE = re.compile(
    r"\b(?:plans?|actions?|steps?|sequence|solution|answer|summary|moves?|follow(?:ing)?)\b", re.IGNORECASE
)
#: Headings of narration about a plan, never the plan itself: "Verification:", "Checking each step:", …
_NARRATION_HEADING_RE = re.compile(
    r"\b(?:verif\w*|check\w*|validat\w*|explanation|explain\w*|reasoning|analy\w+|simulat\w*|trac(?:e|es|ing)|"
    r"why|wait|mistake|error|incorrect|wrong)\b",
    re.IGNORECASE,
)
#: Headings of state descriptions: narration unless they also name the plan ("plan to reach the goal").
_STATE_HEADING_RE = re.compile(
    r"\b(?:state|states|initial|goal|conditions?|precondition\w*|effects?|results?|configuration)\b",
    re.IGNORECASE,
)


@dataclass
class _Line:
    indent: int
    kind: str  # "number", "bullet" or "" (no list marker)
    number: int | None
    text: str  # the raw line, stripped
    verb: bool  # starts like an action: an unreadable action if it does not parse (see `_line_info`)


@dataclass
class _Block:
    """A run of plan items: consecutive action lines, each possibly followed by its own narration."""

    heading: str
    items: list[tuple[_Line, list[Action] | None]] = field(default_factory=list)
    #: the text ends inside this block (an output cut off while it wrote the list, or a list at the very end)
    ends_text: bool = False
    #: the number of its last numbered item
    last_number: int | None = None

    @property
    def has_actions(self) -> bool:
        return any(actions for _, actions in self.items)

    @property
    def actions(self) -> list[Action]:
        return [a for _, found in self.items for a in (found or [])]


def _demarkdown(line: str) -> str:
    text = line.strip()
    if "`" in text or "*" in text:
        text = re.sub(r"[`*_]{1,3}(?=\S)|(?<=\S)[`*_]{1,3}", "", text)
    return text.strip()


def _line_info(raw: str, explicit: bool) -> _Line:
    expanded = raw.expandtabs(4)
    indent = len(expanded) - len(expanded.lstrip(" "))
    text = _demarkdown(raw)
    match = _MARKER_RE.match(text.lower())
    kind, number = "", None
    if match is not None:
        digits = match.group("n1") or match.group("n2") or match.group("n3")
        kind, number = ("number", int(digits[:9])) if digits else ("bullet", None)
    cleaned = _clean_line(text)
    verb = bool(_ACTION_WORD_RE.search(cleaned)) and len(cleaned) <= 200
    # In free text a line of prose may start with "Take" or "Place": only short lines that start like an
    # action count there when they carry no list marker.
    core = verb and bool(_CORE_VERB_RE.match(cleaned)) and len(cleaned.split()) <= 15
    return _Line(
        indent=indent, kind=kind, number=number, text=raw.strip(), verb=verb if explicit or kind else core
    )


_ITEM_REMARK_RE = re.compile(r":|\s[-–—]\s")


#: A step that takes itself back: "6. Stack yellow on blue is not correct, so put down the blue block."
_RETRACTED_RE = re.compile(
    r"\b(?:is|are|was|would\s+be)\s+(?:not|n't)\b|\bisn't\b|\bnot\s+(?:needed|necessary|possible|required|correct)\b"
)
_CORRECTION_RE = re.compile(r"(?:,|\s)\s*(?:so|instead|therefore)\b\s*,?\s*")
_TRAILING_JOIN_RE = re.compile(r"\s*(?:,|\band\b|\bthen\b|:|\s)+$")


def _parse_item(raw: str, info: _Line, previous: Action | None) -> list[Action] | None:
    """The actions of a plan line. A list item may follow its action with a remark, as in
    "1. **Unstack red from orange**: since red is clear, ..." or "2. Put down red - the hand is empty", and
    may take itself back and say what to do instead ("6. Stack red on blue is not possible, so put down
    the blue block"): the action after "so" / "instead" is read. A step that only takes itself back
    ("10. Pick up red is not needed") marks the line as a remark (`info.verb` is cleared), not as an
    unreadable action."""
    found = _parse_line(raw, previous)
    if found or not info.kind:
        return found
    text = _demarkdown(raw)
    marker = _MARKER_RE.match(text.lower())
    body = text[marker.end() :] if marker else text
    if _RETRACTED_RE.search(body.lower()):
        info.verb = False
        corrections = list(_CORRECTION_RE.finditer(body.lower()))
        if corrections:
            tail = _TRAILING_JOIN_RE.sub("", body[corrections[-1].end() :])
            return _parse_line(tail, previous) if tail else None
        return None
    split = _ITEM_REMARK_RE.search(body)
    if split is None or split.start() == 0:
        return None
    return _parse_line(body[: split.start()], previous)


def _is_heading(line: _Line) -> bool:
    text = _demarkdown(line.text)
    return (
        text.endswith(":")
        or text.startswith("#")
        or (line.text.startswith("**") and line.text.endswith("**"))
    )


def _blocks(text: str, explicit: bool = False) -> list[_Block]:
    """The plan blocks of `text` that hold at least one action, in order, each with its heading.

    An item is a line that reads as actions (list marker or not). Lines after an item that are indented
    two or more spaces deeper, or bullets under a numbered item, are its narration: their actions count only when the item's
    own line holds none ("1. Clear the red block:" followed by "- unstack ..."). A block ends at a line of
    prose or a heading, at a numbered list that restarts at 1, and where numbered items turn into bullets;
    a numbered list whose numbers go on (2, 3, …) after a remark stays one block.
    """
    blocks: list[_Block] = []
    current: _Block | None = None
    head: _Line | None = None  # the current item's line
    head_actions: list[Action] | None = None
    broken = True  # a line of prose or a heading since the last item
    gap_heading = gap_last = ""  # the last heading-like line and the last line since the last item
    previous: Action | None = None

    in_block = False  # the last line read belongs to the current block
    for raw in text.splitlines():
        if not raw.strip() or _IGNORED_LINE_RE.match(_demarkdown(raw).lower()):
            continue
        info = _line_info(raw, explicit)
        in_block = True
        if (
            current is not None
            and head is not None
            and (info.indent >= head.indent + 2 or (head.kind == "number" and info.kind == "bullet"))
        ):
            if head_actions:
                continue  # narration about an action already read
            found = _parse_item(raw, info, previous)
            if found:
                current.items[-1] = (head, (current.items[-1][1] or []) + found)
                previous = found[-1]
            elif info.verb and info.kind:
                current.items.append((info, None))
            continue
        found = _parse_item(raw, info, previous)
        if not found:  # "The plan is: pick up red, stack it on blue", "**Plan:** unstack red from blue"
            said = _ANSWER_IS_RE.search(raw)
            if said is None and not info.kind and ":" in raw and _is_plan_heading(raw.split(":", 1)[0]):
                said = re.search(":", raw)
            if said is not None and raw[said.end() :].strip():
                found = _parse_line(raw[said.end() :], previous)
                if found:
                    broken, gap_heading = True, raw[: said.end()].strip()
        number_before = current.last_number if current is not None else None
        numbered_on = (
            info.number is not None and number_before is not None and info.number == number_before + 1
        )
        is_item = bool(found) or (info.verb and (info.kind != "" or not broken)) or numbered_on
        if not is_item:
            broken, head, in_block = True, None, False
            gap_last = info.text
            if _is_heading(info):
                gap_heading = info.text
            continue
        continues = (
            current is not None
            and (not broken or numbered_on)
            and not (info.number == 1 and number_before is not None)
            and not (info.kind == "bullet" and current.items[-1][0].kind == "number")
        )
        if not continues:
            current = _Block(heading=(gap_heading or gap_last) if broken else "")
            blocks.append(current)
        current.items.append((info, found))  # type: ignore[union-attr]
        if info.number is not None:
            current.last_number = info.number  # type: ignore[union-attr]
        head, head_actions = info, found
        if found:
            previous = found[-1]
        broken = False
        gap_heading = gap_last = ""
    if current is not None and in_block:
        current.ends_text = True
    return [b for b in blocks if b.has_actions]


def _block_plan(blocks: Sequence[_Block], kind: str) -> ParsedPlan:
    actions: list[Action] = []
    unparsed: list[tuple[int, str]] = []
    for block in blocks:
        for line, found in block.items:
            if found:
                actions.extend(found)
            elif line.verb and kind != "text":
                unparsed.append((len(actions) + len(unparsed) + 1, line.text))
    return ParsedPlan(actions=actions, unparsed=unparsed, section=kind)


def _last_sentence(heading: str) -> str:
    """What a heading announces is in its last sentence: "Wait, step 3 is wrong. Final plan:"."""
    return re.split(r"[.!?]\s+", heading.strip())[-1]


def _is_plan_heading(heading: str) -> bool:
    heading = _last_sentence(heading)
    return bool(_PLAN_HEADING_RE.search(heading)) and not _NARRATION_HEADING_RE.search(heading)


def _is_narration_heading(heading: str) -> bool:
    heading = _last_sentence(heading)
    if _NARRATION_HEADING_RE.search(heading):
        return True
    return bool(_STATE_HEADING_RE.search(heading)) and not _PLAN_HEADING_RE.search(heading)


def _read_section(section: str, kind: str) -> ParsedPlan:
    """Every plan item of an explicit answer section, in order."""
    blocks = _blocks(section, explicit=True)
    return _block_plan(blocks, kind)


def _read_after_answer_is(text: str, kind: str) -> ParsedPlan | None:
    """The plan after the last "The answer/plan is" that is followed by at least one action.

    Only the last few occurrences are tried, so that hostile text cannot make parsing quadratic. What
    follows the phrase is read up to the end of the first block of actions after it.
    """
    for match in list(_ANSWER_IS_RE.finditer(text))[-_MAX_ANSWER_IS_TRIES:][::-1]:
        blocks = _blocks(text[match.end() :], explicit=kind != "answer_is")
        if blocks:
            return _block_plan(blocks[:1], kind)
    return None


def _completed(blocks: Sequence[_Block], chosen: _Block) -> _Block:
    """`chosen`, or, when the text ends inside it and its actions only repeat the start of an earlier
    list, that earlier (latest such) list: an output cut off while restating its plan, or a step-by-step
    walk through the plan ("Step 1: Unstack blue from yellow. - Condition: ..."), is not a new plan."""
    if not chosen.ends_text:
        return chosen
    mine = chosen.actions
    for block in reversed(blocks[: blocks.index(chosen)]):
        theirs = block.actions
        if len(theirs) > len(mine) and theirs[: len(mine)] == mine:
            return block
    return chosen


def _read_free_text(text: str) -> ParsedPlan:
    """The final plan of untagged text: the last block under a plan heading, else what follows the last
    "the plan is", else the last block that is not under a heading of narration (verification, state
    tracking, …). A last block that the text ends in and that only repeats the start of an earlier block
    gives way to that block (`_completed`)."""
    blocks = _blocks(text)
    planned = [b for b in blocks if _is_plan_heading(b.heading)]
    if planned:
        chosen = _completed(blocks, planned[-1])
        kind = "answer_is" if _ANSWER_IS_RE.search(chosen.heading) else "plan_block"
        return _block_plan([chosen], kind)
    after = _read_after_answer_is(text, "answer_is")
    if after is not None:
        return after
    plain = [b for b in blocks if not _is_narration_heading(b.heading)]
    return _block_plan([_completed(blocks, plain[-1])] if plain else [], "text")


def parse_plan(text: str) -> ParsedPlan:
    """Read the final plan from model output, tolerantly.

    Reasoning models mention many actions before they give their plan, so only one place is read:

    1. Outputs with ``<think>…</think>`` (R1 / QwQ style) are judged on what follows the last
       ``</think>``; an output still inside an unclosed ``<think>`` has no plan.
    2. The last ``<answer>…</answer>`` section (an unclosed tag runs to the end), whole.
    3. PlanBench's ``[PLAN]…[PLAN END]``: the last such block, or, when ``[PLAN END]`` comes before any
       ``[PLAN]`` (a one-shot prompt ends with ``[PLAN]``), what precedes it.
    4. Otherwise the last *plan block*: a heading that names the plan ("**Actions in the plan:**",
       "### Plan", "Here is the plan:", "follow these steps:") followed by a numbered, bulleted or plain
       list of actions. Headings of narration ("Verification:", "State after each step:") do not count.
    5. Otherwise what follows the last "The answer is" / "The plan is" that is followed by an action.
    6. Otherwise, as a last resort, the last list of actions that is not under a heading of narration.

    A list item's own line is the action; the lines indented under it (or bullets under a numbered item)
    are its narration and are read only when the item's line holds no action ("1. Clear red:" followed by
    "- unstack the blue block from the red block"). A list ends at prose or a heading, when its numbering
    restarts at 1 (a restated plan) or turns into bullets; numbering that goes on (2, 3, …) after a remark
    keeps it one list.

    Each action line may be English in the PlanBench phrasing or close to it ("unstack the red block
    from on top of the blue block", "pick up the orange block", "put red on the table") or PDDL
    (``(unstack red blue)``, several per line allowed); case, articles, "block", numbering ("1.",
    "Step 2:", "Action:"), bullets, markdown emphasis, a trailing "(remark)" or ":" and leading
    "then"/"next" are ignored, "it" stands for the block of the previous action, and a line such as
    "pick up red, then stack it on blue" is split on commas, semicolons and "then" when every piece is an
    action. Lines of the chosen plan that start with an action verb but cannot be read are reported in
    `unparsed` (not for the last-resort reading of free text).
    """
    body = after_thinking(text)
    if body is None:
        return ParsedPlan(actions=[], section="thinking")
    section = answer_tag(body, unclosed=True)
    if section is not None:
        return _read_after_answer_is(section, "answer_tag") or _read_section(section, "answer_tag")
    first_close = _PLAN_CLOSE_RE.search(body)
    first_open = _PLAN_OPEN_RE.search(body)
    if first_close is not None and (first_open is None or first_close.start() < first_open.start()):
        return _read_section(body[: first_close.start()], "plan_tag")
    opens = list(_PLAN_OPEN_RE.finditer(body))
    if opens:
        rest = body[opens[-1].end() :]
        close = _PLAN_CLOSE_RE.search(rest)
        return _read_section(rest[: close.start()] if close else rest, "plan_tag")
    return _read_free_text(body)


_INIT_LINE_RE = re.compile(r"As initial conditions I have that,[^\n]+")
_MAX_RESTATEMENTS = 8
_PLAN_BLOCK_RE = re.compile(r"\[plan\](.*?)\[plan[ _-]?end\]", re.IGNORECASE | re.DOTALL)


def focus_on_problem(completion: str, question: str) -> str:
    """The part of `completion` that answers `question`'s own problem, for PlanBench-style prompts.

    Some models continue a one-shot prompt instead of answering it: they repeat the example's plan up to
    its ``[PLAN END]``, restate the example and the problem (``[STATEMENT] As initial conditions I have
    that, …``) and sometimes go on to invent further problems. When the completion restates the
    question's last statement word for word, what follows its last restatement (up to the next
    ``[STATEMENT]``) is the answer; otherwise, when the completion opens with a copy of one of the
    question's example plans, what follows that copy is. Either is used only if it holds a plan; any other
    completion is returned unchanged.
    """
    if not isinstance(question, str) or "[STATEMENT]" not in question:
        return completion
    own = _INIT_LINE_RE.search(question.rsplit("[STATEMENT]", 1)[-1])
    if own is not None:
        line = own.group(0).strip()
        starts: list[int] = []
        start = completion.find(line)
        while start >= 0:
            starts.append(start)
            start = completion.find(line, start + len(line))
        regions: list[tuple[str, list[str], bool]] = []
        last = starts[-_MAX_RESTATEMENTS:]  # the last few, each up to the next: parsing stays linear
        for start, following in zip(last, [*last[1:], len(completion)]):
            rest = completion[start + len(line) : following]
            nxt = rest.find("[STATEMENT]")
            region = rest if nxt < 0 else rest[:nxt]
            at_end = nxt < 0 and following == len(completion)
            regions.append((region, parse_plan(region).pddl, at_end))
        answered = [r for r in regions if r[1]]
        if answered:
            region, plan, at_end = answered[-1]
            if at_end:  # cut off while restating a plan given in full before: that plan
                for earlier, theirs, _ in reversed(answered[:-1]):
                    if len(theirs) > len(plan) and theirs[: len(plan)] == plan:
                        return earlier
            return region
    close, opening = _PLAN_CLOSE_RE.search(completion), _PLAN_OPEN_RE.search(completion)
    if close is not None and (opening is None or close.start() < opening.start()):
        head = parse_plan(completion[: close.start()]).pddl
        examples = [parse_plan(block).pddl for block in _PLAN_BLOCK_RE.findall(question)[:8]]
        rest = completion[close.end() :]
        if head and head in examples and parse_plan(rest).actions:
            return rest
    return completion


def resolve_initials(actions: Sequence[Action], blocks: Iterable[str]) -> list[Action]:
    """`actions` with one-letter block names ("Unstack Y from O") replaced by the one block of `blocks`
    whose name starts with that letter; a letter that fits no block or several stays as it is."""
    blocks = list(blocks)
    known = set(blocks)
    by_initial: dict[str, list[str]] = {}
    for block in blocks:
        by_initial.setdefault(block[:1], []).append(block)

    def name(arg: str) -> str:
        if arg in known or len(arg) != 1:
            return arg
        found = by_initial.get(arg, [])
        return found[0] if len(found) == 1 else arg

    return [Action(a.name, tuple(name(x) for x in a.args)) for a in actions]
