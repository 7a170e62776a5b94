"""A scripted `Generator` and a toy math `Task` for tests that must not load a model.

    gen = FakeGenerator(
        role="A",
        script={"thinking": "2 + 2 = 4.", "answer": "4}", ("B", "double-check"): " It holds."},
    )
    gen.generate([GenerationRequest(prompt="…<thinking>", n=2)])
    gen.calls        # one entry per generate() call: the list of requests it received

Responses are looked up by the tag the prompt ends in (the last `<tag>` opened in the prompt): first
`(role, tag)`, then `tag`, then `default`. A response is a string (every sample), a list of strings
(sample i gets item i, cycling), a `Completion`, or a callable `(request, sample_index) -> str |
Completion`. A generator given no `script` but a callable `respond` uses it for everything.

Token accounting is by whitespace-separated words: `n_tokens` is the word count, a response longer than
`max_tokens` words is cut to `max_tokens` words with `finish_reason="length"`, and text after a stop string
is dropped (as real backends do). With `logprobs` requested every token gets `token_logprob` and, for
k > 0, k alternatives `[token_logprob, token_logprob - 1, …]`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from treecot.backends.base import Completion, GenerationRequest, GenerationResult
from treecot.tasks.base import Task, Verdict, make_problem

Response = str | list[str] | Completion | Callable[[GenerationRequest, int], "str | Completion"]
_OPEN_TAG = re.compile(r"<([A-Za-z][\w-]*)>")


def last_open_tag(prompt: str) -> str | None:
    """The tag of the last `<tag>` opened in `prompt` (the node type being generated)."""
    tags = _OPEN_TAG.findall(prompt)
    return tags[-1] if tags else None


class FakeGenerator:
    """A deterministic `Generator` following a script; records every call."""

    def __init__(
        self,
        script: Mapping[Any, Response] | None = None,
        *,
        role: str = "A",
        default: Response = "ok",
        respond: Callable[[GenerationRequest, int], str | Completion] | None = None,
        model_id: str | None = None,
        token_logprob: float = -0.5,
    ) -> None:
        self.script = dict(script or {})
        self.role = role
        self.default = default
        self.respond = respond
        self.model_id = model_id or f"fake-{role}"
        self.token_logprob = token_logprob
        self.calls: list[list[GenerationRequest]] = []

    # -- Generator protocol --------------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return text + ("<|assistant|>\n" if add_generation_prompt else "")

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.calls.append(list(requests))
        return [self._serve(req) for req in requests]

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[GenerationRequest]:
        """Every request received, across calls."""
        return [r for call in self.calls for r in call]

    def _lookup(self, request: GenerationRequest) -> Response:
        if self.respond is not None:
            return self.respond
        tag = last_open_tag(request.prompt if isinstance(request.prompt, str) else "")
        for key in ((self.role, tag), tag):
            if key in self.script:
                return self.script[key]
        return self.default

    def _serve(self, request: GenerationRequest) -> GenerationResult:
        response = self._lookup(request)
        completions = []
        for i in range(request.n):
            if callable(response):
                out = response(request, i)
            elif isinstance(response, list):
                out = response[i % len(response)]
            else:
                out = response
            completions.append(self._complete(out, request))
        prompt_tokens = (
            len(request.prompt.split()) if isinstance(request.prompt, str) else len(request.prompt)
        )
        return GenerationResult(completions=completions, prompt_tokens=prompt_tokens, cached_tokens=0)

    def _complete(self, out: str | Completion, request: GenerationRequest) -> Completion:
        if isinstance(out, Completion):
            return replace(out)
        text, finish = out, "stop"
        for stop in request.stop:
            if stop in text:
                text = text[: text.index(stop)]
        words = text.split()
        if len(words) > request.max_tokens:
            words = words[: request.max_tokens]
            text = " " + " ".join(words)
            finish = "length"
        n = len(words)
        token_logprobs = top = None
        if request.logprobs is not None:
            token_logprobs = [self.token_logprob] * n
            if request.logprobs > 0:
                top = [[self.token_logprob - j for j in range(request.logprobs)] for _ in range(n)]
        return Completion(
            text=text, n_tokens=n, finish_reason=finish, token_logprobs=token_logprobs, top_logprobs=top
        )


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


@dataclass
class ToyMathTask(Task):
    """A math task whose verifier compares the last `\\boxed{…}` of the completion with the reference."""

    name: str = "toy"
    domain: str = "math"
    system_prompt: str = "Solve the problem. Put the final answer in \\boxed{}."

    def load(self, split: str = "test", limit: int | None = None):
        from datasets import Dataset

        self.check_split(split)
        rows = [toy_problem(f"What is {a} + {a}?", str(2 * a)) for a in range(1, 6)]
        return Dataset.from_list(rows[:limit] if limit is not None else rows)

    def verify(self, completion: str, problem: dict) -> Verdict:
        found = _BOXED.findall(completion)
        if not found:
            return Verdict(correct=False, answered=False, reason="no \\boxed{} answer")
        answer = found[-1].strip()
        return Verdict(correct=answer == problem["reference"], answered=True, extracted=answer)


def toy_problem(question: str = "What is 2 + 2?", reference: str = "4") -> dict:
    return make_problem("toy", question, reference, {"source": "test"})
