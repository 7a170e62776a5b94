"""Generation over HTTP from any OpenAI-compatible ``/v1/completions`` server.

Works with vLLM (GPU or its CPU build), SGLang and llama.cpp's ``llama-server``. The chat template is
applied *client-side* from the local tokenizer (the server only ever continues a raw prefix, which is
what tree search needs), so the tokenizer given here must be the served model's.

    >>> gen = OpenAIGenerator("http://127.0.0.1:8000", "HuggingFaceTB/SmolLM2-135M-Instruct")
    >>> prompt = gen.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    >>> [res] = gen.generate([GenerationRequest(prompt, n=4, max_tokens=64, stop=["</thinking>"])])
    >>> res.completions[0].text, gen.stats["generated_tokens"]

Behaviour (all of it tested against a real vLLM server and scripted fake servers):

* **One HTTP request per** :class:`~treecot.backends.base.GenerationRequest`, all ``n`` samples in it
  (the ``n`` parameter); at most ``concurrency`` requests in flight per generator, shared by every thread
  that calls :meth:`OpenAIGenerator.generate`. Results come back in request order.
* **Greedy decoding** (``temperature=0``) with ``n > 1`` asks the server for one sample and copies it
  ``n`` times: greedy samples are identical, and vLLM rejects ``n > 1`` with greedy sampling.
* **Servers that ignore** ``n`` (llama-cpp-python, ``transformers serve``) return fewer choices. By
  default the missing samples are requested again as single-sample requests (with seeds ``seed + i``
  when a seed is set) and a warning is logged once per generator; with ``fill_missing_samples=False`` a
  :class:`BackendFeatureError` naming the server and the feature is raised instead.
* **Log-probs**: requested with ``logprobs=k``; both response formats are read: the completions format
  (``logprobs.token_logprobs`` + ``logprobs.top_logprobs``, a list of ``{token: logprob}`` dicts, used by
  vLLM and SGLang) and the chat format (``logprobs.content[].logprob`` / ``.top_logprobs``, which
  llama.cpp returns even on ``/v1/completions``). A server that returns no log-probs (or no top-k
  alternatives) although they were requested raises :class:`BackendFeatureError`.
* **Token ids**: when the server returns each choice's ``token_ids`` (vLLM with ``extra_body=
  {"return_token_ids": True}``), ``GenerationResult.extra["token_ids"]`` holds them per completion
  (else ``None``); ``extra["http_requests"]`` counts the HTTP requests the result took.
* **Token counts** (``Completion.n_tokens``), best source first: the choice's ``token_ids`` (vLLM with
  ``extra_body={"return_token_ids": True}``), the length of its per-token log-probs, ``usage.
  completion_tokens`` when the response holds a single choice (it is per-response, and llama.cpp counts
  only one choice when ``n > 1``), else the local tokenizer's count of the returned text (approximate:
  it misses the EOS or stop-string tokens the server generated and stripped).
* **Prompt and cache accounting**: ``usage.prompt_tokens`` minus the cached tokens, read from
  ``usage.prompt_tokens_details.cached_tokens`` (vLLM needs ``--enable-prompt-tokens-details``) or
  llama.cpp's ``timings.cache_n``; without ``usage`` the prompt is counted with the local tokenizer.
* **Stop strings** are removed from the text even if a server returns them (``transformers serve``).
* **Prompts** are sent as given: text, or token ids (``GenerationRequest.prompt`` as a list). vLLM adds
  the tokenizer's special tokens to *text* prompts; for models whose chat template already starts with
  BOS (Llama 3) send token ids or pass ``extra_body={"add_special_tokens": False}``. (SmolLM2 and Qwen
  add none, so text and token-id prompts are identical; tested.)
* **Errors**: connection errors, timeouts, 5xx, 408 and 429 are retried ``max_retries`` times with
  exponential backoff (``backoff * 2**attempt`` seconds, or the server's ``Retry-After`` if longer);
  other 4xx are raised at once as :class:`BackendHTTPError` carrying the server's own error message.
* **Lifecycle**: ``concurrency`` worker threads with keep-alive connections live across calls;
  :meth:`OpenAIGenerator.close` (or ``with OpenAIGenerator(...) as gen:``) releases them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import requests

from treecot.backends.base import Completion, GenerationRequest, GenerationResult

logger = logging.getLogger(__name__)

#: HTTP statuses that are retried: every 5xx plus these two transient 4xx.
RETRY_4XX = frozenset({408, 429})
#: Cap on one backoff sleep, in seconds.
MAX_BACKOFF = 30.0


class BackendError(RuntimeError):
    """A generation server failed (after retries) or answered something that is not a completion."""


class BackendUnavailable(BackendError):
    """The server could not be reached or kept failing (connection errors, timeouts, HTTP 5xx) through every
    retry: the server's fault, not the request's. `MultiServerGenerator` sends such requests elsewhere."""


class BackendHTTPError(BackendError):
    """The server rejected a request with an HTTP error; ``message`` is the server's own explanation."""

    def __init__(self, url: str, status: int, message: str):
        self.url, self.status, self.message = url, status, message
        super().__init__(f"{url} answered HTTP {status}: {message}")


class BackendFeatureError(BackendError):
    """The server does not support a feature a request needs (e.g. ``n > 1`` or ``logprobs``)."""

    def __init__(self, url: str, feature: str, detail: str):
        self.url, self.feature = url, feature
        super().__init__(f"the server at {url} does not support {feature}: {detail}")


def normalize_base_url(base_url: str) -> str:
    """``http://host:port``, ``http://host:port/`` and ``http://host:port/v1`` all become ``…/v1``."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000', got {base_url!r}")
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


# --------------------------------------------------------------------------------------------------
# Response parsing (pure functions, shared by tests)
# --------------------------------------------------------------------------------------------------


def _top_values(alternatives: Any, k: int) -> list[float]:
    """The k largest log-probs of one position's alternatives (a ``{token: lp}`` dict or a list of
    ``{"token", "logprob"}`` objects), sorted descending. Servers may add the sampled token as a k+1-th
    entry; it is kept only if it is among the top k."""
    if not alternatives:
        return []
    if isinstance(alternatives, dict):
        values = list(alternatives.values())
    else:
        values = [alt["logprob"] for alt in alternatives]
    return sorted((float(v) for v in values), reverse=True)[:k]


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def parse_logprobs(logprobs: Any, k: int) -> tuple[list[float] | None, list[list[float]] | None]:
    """Read one choice's ``logprobs`` object in either format.

    Returns ``(token_logprobs, top_logprobs)``: the sampled tokens' log-probs (``None`` if the object is
    absent) and, when ``k > 0``, per position the top-k alternatives' log-probs sorted descending
    (``None`` if the server sent no alternatives at all).
    """
    if not logprobs:
        return None, None
    if isinstance(logprobs.get("content"), list):  # chat format (llama.cpp, chat endpoints)
        content = logprobs["content"]
        tokens = [_as_float(pos.get("logprob")) for pos in content]
        top = [_top_values(pos.get("top_logprobs"), k) for pos in content] if k > 0 else None
    elif "token_logprobs" in logprobs:  # completions format (vLLM, SGLang, OpenAI)
        tokens = [_as_float(lp) for lp in logprobs["token_logprobs"] or []]
        raw_top = logprobs.get("top_logprobs")
        top = [_top_values(pos, k) for pos in raw_top] if (k > 0 and raw_top is not None) else None
    else:
        raise BackendError(f"unrecognised logprobs format with keys {sorted(logprobs)}")
    if top is not None and tokens and not any(top):
        top = None  # a list of empty alternatives is "not supported", not "nothing to report"
    return tokens, top


#: The most stop strings the OpenAI API (and vLLM's server, which enforces it) accepts per request. A request
#: with more sends the first ones; the rest are applied to the returned text (`OpenAIGenerator._parse`).
SERVER_STOP_LIMIT = 4


def _tokens_within(logprobs: Any, n_chars: int) -> int | None:
    """How many of a choice's generated tokens lie wholly within its first `n_chars` characters, from the
    token strings of its ``logprobs`` (completions or chat format); None without them. Re-encoding the cut
    text can split it differently from how it was generated."""
    if not isinstance(logprobs, dict):
        return None
    tokens = logprobs.get("tokens")
    if tokens is None and isinstance(logprobs.get("content"), list):
        tokens = [t.get("token") if isinstance(t, dict) else None for t in logprobs["content"]]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return None
    end = kept = 0
    for token in tokens:
        end += len(token)
        if end > n_chars:
            break
        kept += 1
    return kept


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the earliest stop string (servers that keep the stop string in the text)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut]


def cached_tokens_of(data: dict) -> int:
    """Prompt tokens served from the server's prefix cache, in whichever field the server reports it."""
    usage = data.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    if isinstance(details.get("cached_tokens"), int):
        return details["cached_tokens"]
    timings = data.get("timings") or {}  # llama.cpp
    if isinstance(timings.get("cache_n"), int):
        return timings["cache_n"]
    return 0


@dataclass
class _Parsed:
    completions: list[Completion]
    prompt_tokens: int  # processed (prefill) tokens, cache hits excluded
    cached_tokens: int
    token_ids: list[list[int] | None]  # per completion, when the server returns them
    http_requests: int = 1
    server_model: str | None = None


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------


class OpenAIGenerator:
    """A :class:`~treecot.backends.base.Generator` backed by an OpenAI-compatible completions server.

    Args:
        base_url (`str`):
            The server's root, e.g. ``"http://127.0.0.1:8000"`` (``/v1`` is appended if missing).
        model (`str | None`):
            The served model name sent in every request (vLLM: the ``--model`` argument or
            ``--served-model-name``). ``None`` asks the server's ``/v1/models`` once and uses its only
            model (an error lists them when there are several).
        tokenizer (`PreTrainedTokenizerBase` or `str`, *optional*):
            The served model's tokenizer, used for the chat template and for local token counts:
            a tokenizer object, or a name/path for :func:`treecot.models.load_tokenizer` (loaded on first
            use). Default: ``model`` itself, which works when the served name is a Hub id or directory.
        concurrency (`int`, *optional*, defaults to `8`):
            Maximum HTTP requests in flight from this generator (all threads together).
        timeout (`float`, *optional*, defaults to `600`):
            Seconds to wait for one response (connect timeout: ``min(timeout, 10)``).
        max_retries (`int`, *optional*, defaults to `4`):
            Retries after a connection error, timeout, 5xx, 408 or 429 (0 = fail at once).
        backoff (`float`, *optional*, defaults to `0.5`):
            First retry delay in seconds; doubles at each retry (capped at 30 s).
        api_key (`str`, *optional*):
            Sent as ``Authorization: Bearer <api_key>`` when set.
        fill_missing_samples (`bool`, *optional*, defaults to `True`):
            When the server returns fewer than ``n`` choices, request the missing
            samples one by one (``True``, warns once) or raise :class:`BackendFeatureError` (``False``).
        extra_body (`dict[str, Any]`, *optional*):
            Extra JSON fields merged into every request, e.g. ``{"return_token_ids": True}``
            (vLLM: exact per-sample token counts) or ``{"top_k": 20}``.
        model_id (`str`, *optional*):
            The id recorded in trees and cards (default: ``model``).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None,
        tokenizer: Any = None,
        *,
        concurrency: int = 8,
        timeout: float = 600,
        max_retries: int = 4,
        backoff: float = 0.5,
        api_key: str | None = None,
        fill_missing_samples: bool = True,
        extra_body: dict[str, Any] | None = None,
        model_id: str | None = None,
    ):
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
        self.base_url = normalize_base_url(base_url)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.fill_missing_samples = fill_missing_samples
        self.extra_body = dict(extra_body or {})
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []  # one per worker thread, kept alive across calls
        self._pool: ThreadPoolExecutor | None = None
        self._warned_n = False
        self.stats: dict[str, float] = {
            "calls": 0,  # generate() calls
            "requests": 0,  # GenerationRequests served
            "samples": 0,  # completions returned
            "http_requests": 0,  # successful HTTP requests (a request that ignored `n` adds more)
            "prompt_tokens": 0,  # prefill tokens, cache hits excluded
            "cached_tokens": 0,
            "generated_tokens": 0,
            "seconds": 0.0,  # wall time inside generate()
            "retries": 0,
        }
        self.model = model if model is not None else self._discover_model()
        self.model_id = model_id or self.model
        if isinstance(tokenizer, os.PathLike):
            tokenizer = str(tokenizer)
        self._tokenizer = tokenizer  # loaded on first use when None or a name
        self._tokenizer_name = self.model if tokenizer is None else tokenizer

    # -- public API ----------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        """The local tokenizer (loaded with :func:`treecot.models.load_tokenizer` on first use)."""
        with self._lock:
            if self._tokenizer is None or isinstance(self._tokenizer, str):
                from treecot.models import load_tokenizer

                self._tokenizer = load_tokenizer(self._tokenizer_name)
            return self._tokenizer

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render ``messages`` with the local tokenizer's chat template (the server never sees messages)."""
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def served_models(self) -> list[str]:
        """The model names the server lists at ``/v1/models``."""
        data = self._request("GET", "/models", None)
        return [m["id"] for m in data.get("data", [])]

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Serve ``requests`` concurrently (at most ``concurrency`` in flight); results in request order."""
        for i, req in enumerate(requests):
            validate_request(req, i)
        if not requests:
            return []
        t0 = time.perf_counter()
        pool = self._executor()
        # phase 1: one HTTP request per GenerationRequest; phase 2: samples a server did not return
        parsed = _gather([pool.submit(self._complete, req, _wire_n(req), req.seed) for req in requests])
        missing: list[tuple[int, GenerationRequest, int | None]] = []  # (result index, request, seed)
        for i, (req, part) in enumerate(zip(requests, parsed)):
            got = len(part.completions)
            if req.temperature == 0 and 0 < got < req.n:  # greedy: every sample is the same
                part.completions = [_copy(part.completions[0]) for _ in range(req.n)]
                part.token_ids = [part.token_ids[0]] * req.n
            elif got > req.n:  # a server that over-delivers: keep what was asked for
                part.completions = part.completions[: req.n]
                part.token_ids = part.token_ids[: req.n]
            elif got < req.n:
                missing += [
                    (i, req, None if req.seed is None else req.seed + j)
                    for j in self._missing_samples(req, got)
                ]
        fills: list[tuple[int, Future]] = [
            (i, pool.submit(self._complete, req, 1, seed)) for i, req, seed in missing
        ]
        for (i, _fut), extra in zip(fills, _gather([f for _, f in fills])):
            if not extra.completions:
                raise BackendError(f"{self.base_url}/completions returned no choices for a 1-sample request")
            part = parsed[i]
            part.completions += extra.completions[:1]
            part.token_ids += extra.token_ids[:1]
            part.prompt_tokens += extra.prompt_tokens
            part.cached_tokens += extra.cached_tokens
            part.http_requests += 1
        results = [
            GenerationResult(
                completions=p.completions,
                prompt_tokens=p.prompt_tokens,
                cached_tokens=p.cached_tokens,
                extra={
                    "http_requests": p.http_requests,
                    "server_model": p.server_model,
                    "token_ids": p.token_ids if all(t is not None for t in p.token_ids) else None,
                },
            )
            for p in parsed
        ]
        with self._lock:
            self.stats["calls"] += 1
            self.stats["requests"] += len(requests)
            self.stats["samples"] += sum(len(r.completions) for r in results)
            self.stats["prompt_tokens"] += sum(r.prompt_tokens for r in results)
            self.stats["cached_tokens"] += sum(r.cached_tokens for r in results)
            self.stats["generated_tokens"] += sum(c.n_tokens for r in results for c in r.completions)
            self.stats["seconds"] += time.perf_counter() - t0
        return results

    def __repr__(self) -> str:
        return f"OpenAIGenerator(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"

    # -- internals -------------------------------------------------------------------------------------

    def _missing_samples(self, req: GenerationRequest, got: int) -> range:
        """Indices of the samples to request again after the server returned ``got < req.n`` choices."""
        if got == 0:
            raise BackendError(f"{self.base_url}/completions returned no choices (asked for n={req.n})")
        if not self.fill_missing_samples:
            raise BackendFeatureError(
                self.base_url,
                "n > 1",
                f"asked for n={req.n} samples in one request and got {got} choice(s). Use a server that "
                "supports `n` (vLLM, SGLang, llama-server) or OpenAIGenerator(..., fill_missing_samples=True) "
                "to request the missing samples separately.",
            )
        with self._lock:
            warn, self._warned_n = not self._warned_n, True
        if warn:
            logger.warning(
                "The server at %s ignored n=%d (returned %d choice(s)); requesting the missing samples as "
                "separate 1-sample requests (slower, no shared prefill). This warning is shown once.",
                self.base_url,
                req.n,
                got,
            )
        return range(got, req.n)

    def _payload(self, req: GenerationRequest, n: int, seed: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": req.prompt,
            "n": n,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.stop:
            payload["stop"] = list(req.stop)[:SERVER_STOP_LIMIT]
        if seed is not None:
            payload["seed"] = seed
        if req.logprobs is not None:
            payload["logprobs"] = req.logprobs
        payload.update(self.extra_body)
        return payload

    def _complete(self, req: GenerationRequest, n: int, seed: int | None) -> _Parsed:
        data = self._request("POST", "/completions", self._payload(req, n, seed))
        return self._parse(data, req)

    def _parse(self, data: Any, req: GenerationRequest) -> _Parsed:
        url = f"{self.base_url}/completions"
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            raise BackendError(f"{url} answered without a 'choices' list: {str(data)[:300]}")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        usage = data.get("usage") or {}
        k = req.logprobs or 0
        completions, token_ids = [], []
        for ch in choices:
            text = ch.get("text")
            if text is None and isinstance(ch.get("message"), dict):
                text = ch["message"].get("content")
            if not isinstance(text, str):
                raise BackendError(f"{url} returned a choice without text: {str(ch)[:300]}")
            sent = cut_at_stop(text, req.stop[:SERVER_STOP_LIMIT])
            text = cut_at_stop(sent, req.stop)
            # A stop string the server was not sent (beyond the API's limit) ended the text here: what the
            # server generated after it is not part of the completion (tokens, log-probs, finish reason).
            cut_here = len(text) < len(sent)
            token_lps, top_lps = parse_logprobs(ch.get("logprobs"), k)
            if req.logprobs is not None and token_lps is None:
                raise BackendFeatureError(
                    self.base_url, "logprobs", f"requested logprobs={req.logprobs} and the response has none"
                )
            if k > 0 and top_lps is None:
                raise BackendFeatureError(
                    self.base_url,
                    "top-k logprobs",
                    f"requested logprobs={k} (top-{k} alternatives) and the response has only the sampled "
                    "tokens' log-probs",
                )
            ids = ch.get("token_ids")
            if cut_here:
                kept = _tokens_within(ch.get("logprobs"), len(text))
                if kept is None:  # no token strings: count the kept text's tokens
                    kept = len(self.tokenizer.encode(text, add_special_tokens=False))
                ids = ids[:kept] if isinstance(ids, list) else ids
                token_lps = token_lps[:kept] if token_lps is not None else None
                top_lps = top_lps[:kept] if top_lps is not None else None
                ch = {**ch, "finish_reason": "stop"}
            token_ids.append([int(t) for t in ids] if isinstance(ids, list) else None)
            if cut_here:
                n_tokens = len(token_lps) if token_lps is not None else kept
            elif isinstance(ids, list):
                n_tokens = len(ids)
            elif token_lps is not None:
                n_tokens = len(token_lps)
            elif len(choices) == 1 and isinstance(usage.get("completion_tokens"), int):
                n_tokens = usage["completion_tokens"]
            else:
                n_tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
            completions.append(
                Completion(
                    text=text,
                    n_tokens=n_tokens,
                    finish_reason="length" if ch.get("finish_reason") == "length" else "stop",
                    token_logprobs=token_lps,
                    top_logprobs=top_lps if k > 0 else None,
                )
            )
        if isinstance(usage.get("prompt_tokens"), int):
            total_prompt = usage["prompt_tokens"]
        elif isinstance(req.prompt, list):
            total_prompt = len(req.prompt)
        else:
            total_prompt = len(self.tokenizer.encode(req.prompt, add_special_tokens=False))
        cached = min(cached_tokens_of(data), total_prompt)
        return _Parsed(
            completions=completions,
            prompt_tokens=total_prompt - cached,
            cached_tokens=cached,
            token_ids=token_ids,
            server_model=data.get("model"),
        )

    def close(self) -> None:
        """Stop the worker threads and close their HTTP connections (a later call starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
            sessions, self._sessions = self._sessions, []
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for session in sessions:
            session.close()

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _executor(self) -> ThreadPoolExecutor:
        """The generator's worker threads (``concurrency`` of them), kept across calls so that their
        keep-alive connections are reused."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="treecot-http"
                )
            return self._pool

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self._headers)
            with self._lock:
                self._sessions.append(session)
        return session

    def _request(self, method: str, path: str, payload: dict | None) -> Any:
        """One HTTP call with retries; returns the decoded JSON body."""
        url = self.base_url + path
        timeout = (min(self.timeout, 10.0), self.timeout)
        for attempt in range(self.max_retries + 1):
            retry_after = None
            with self._slots:
                try:
                    resp = self._session().request(method, url, json=payload, timeout=timeout)
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                ) as e:
                    error = f"{type(e).__name__}: {e}"
                else:
                    if resp.status_code < 400:
                        try:
                            data = resp.json()
                        except ValueError:
                            raise BackendError(
                                f"{url} answered HTTP {resp.status_code} with a body that is not JSON: "
                                f"{resp.text[:300]!r}"
                            ) from None
                        with self._lock:
                            self.stats["http_requests"] += 1
                        return data
                    message = _server_message(resp)
                    if resp.status_code < 500 and resp.status_code not in RETRY_4XX:
                        raise BackendHTTPError(url, resp.status_code, message)
                    error = f"HTTP {resp.status_code}: {message}"
                    retry_after = _retry_after(resp)
            if attempt == self.max_retries:
                raise BackendUnavailable(
                    f"{method} {url} failed after {attempt + 1} attempt(s); last error: {error}"
                )
            delay = min(MAX_BACKOFF, max(self.backoff * 2**attempt, retry_after or 0.0))
            with self._lock:
                self.stats["retries"] += 1
            logger.warning("%s %s failed (%s); retry %d/%d in %.1fs", method, url, error, attempt + 1,
                           self.max_retries, delay)  # fmt: skip
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _discover_model(self) -> str:
        models = self.served_models()
        if len(models) != 1:
            raise ValueError(
                f"model=None needs a server with exactly one model; {self.base_url}/models lists "
                f"{models or 'none'}. Pass the model name explicitly."
            )
        return models[0]


def validate_request(req: GenerationRequest, i: int = 0) -> None:
    """Raise a clear `ValueError`/`TypeError` naming request `i` and the field that is invalid."""
    where = f"request {i}"
    if not isinstance(req, GenerationRequest):
        raise TypeError(f"{where}: expected a GenerationRequest, got {type(req).__name__}")
    if not isinstance(req.prompt, (str, list)) or not req.prompt:
        raise ValueError(f"{where}: prompt must be a non-empty string or list of token ids")
    if req.n < 1:
        raise ValueError(f"{where}: n must be >= 1, got {req.n}")
    if req.max_tokens < 1:
        raise ValueError(f"{where}: max_tokens must be >= 1, got {req.max_tokens}")
    if req.logprobs is not None and req.logprobs < 0:
        raise ValueError(f"{where}: logprobs must be None or >= 0, got {req.logprobs}")
    if isinstance(req.stop, str):
        raise TypeError(f"{where}: stop must be a list of strings, got the string {req.stop!r}")


def _wire_n(req: GenerationRequest) -> int:
    """Samples to ask the server for: greedy decoding (temperature 0) is deterministic, so one sample is
    requested and copied ``n`` times (vLLM rejects ``n > 1`` with greedy sampling)."""
    return 1 if req.temperature == 0 else req.n


def _copy(c: Completion) -> Completion:
    return replace(
        c,
        token_logprobs=None if c.token_logprobs is None else list(c.token_logprobs),
        top_logprobs=None if c.top_logprobs is None else [list(p) for p in c.top_logprobs],
    )


def _gather(futures: list[Future]) -> list[_Parsed]:
    """Results in order; the first failure cancels the requests not yet started and is raised."""
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _server_message(resp: requests.Response) -> str:
    """The server's explanation of an error: OpenAI's ``{"error": {"message"}}``, FastAPI's
    ``{"detail"}``, ``{"message"}``, or the raw body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason or ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
