"""Several OpenAI-compatible servers of one model as one `Generator`: sticky per tree, spread by load,
failing over when a server dies.

    >>> gen = MultiServerGenerator([OpenAIGenerator(url, "my-model", tokenizer=tok) for url in urls])

A recipe gets one by listing several servers for a role (`base_url: [http://a:8000/v1, http://b:8000/v1]`).

* **Sticky.** Requests carrying the same `GenerationRequest.affinity` (MCTS sets the problem id: one tree)
  go to the server that served the first of them, so that server's prefix cache keeps serving the tree.
* **Spread by load.** A new affinity goes to the live server with the fewest trees assigned (ties: the
  first listed); `end_affinity` (called when a tree is written) frees its place. Requests without an
  affinity go to the least loaded server of their batch.
* **Failover.** When a server fails a request through all its retries (`BackendUnavailable`: connection
  refused or reset, timeouts, HTTP 5xx), it is marked dead for the rest of the run, its trees are
  reassigned, and the requests it failed are sent to the live servers. The search state lives in the
  caller, so a tree continues on its new server (its prefix cache cold there): nothing is lost and nothing is
  written twice. A request the server rejects (HTTP 4xx) is the request's fault and is raised as before.
  With every server dead, the last error is raised; requests that fail on a second server too are raised
  (a request that crashes servers would otherwise take every one down).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from treecot.backends.base import GenerationRequest, GenerationResult
from treecot.backends.openai_backend import BackendUnavailable

logger = logging.getLogger(__name__)

__all__ = ["MultiServerGenerator"]


class MultiServerGenerator:
    """One model served by several servers (see the module docstring).

    Args:
        generators (`Sequence[Any]`):
            One per server (at least 2), each with the same model and tokenizer (`OpenAIGenerator`s in
            practice).
    """

    def __init__(self, generators: Sequence[Any]):
        generators = list(generators)
        if len(generators) < 2:
            raise ValueError(f"MultiServerGenerator needs at least 2 servers, got {len(generators)}")
        self.generators = generators
        self.model_id = generators[0].model_id
        self._lock = threading.Lock()
        self._assigned: dict[str, int] = {}
        self._dead: dict[int, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=len(generators), thread_name_prefix="treecot-servers")
        self.stats: dict[str, Any] = {
            "requests_per_server": [0] * len(generators),
            "failovers": 0,
            "dead_servers": [],
        }

    @property
    def tokenizer(self):
        return self.generators[0].tokenizer

    @property
    def names(self) -> list[str]:
        return [str(getattr(g, "base_url", i)) for i, g in enumerate(self.generators)]

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.generators[0].apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def server_of(self, affinity: str) -> int | None:
        """Index of the server `affinity` is assigned to (None: not assigned)."""
        with self._lock:
            return self._assigned.get(affinity)

    def end_affinity(self, affinity: str) -> None:
        """The tree `affinity` is finished: its server counts one tree fewer."""
        with self._lock:
            self._assigned.pop(affinity, None)

    def _pick(self, affinity: str | None, batch: Counter) -> int:
        with self._lock:
            alive = [i for i in range(len(self.generators)) if i not in self._dead]
            if not alive:
                raise BackendUnavailable(
                    "every server failed: "
                    + "; ".join(f"{self.names[i]}: {why}" for i, why in self._dead.items())
                )
            if affinity is not None:
                current = self._assigned.get(affinity)
                if current is not None and current not in self._dead:
                    return current
                trees = Counter(self._assigned.values())
                chosen = min(alive, key=lambda i: (trees[i], batch[i], i))
                self._assigned[affinity] = chosen
                return chosen
            return min(alive, key=lambda i: (batch[i], i))

    def _mark_dead(self, i: int, err: Exception) -> None:
        with self._lock:
            if i in self._dead:
                return
            self._dead[i] = str(err)
            moved = [a for a, s in self._assigned.items() if s == i]
            for a in moved:
                del self._assigned[a]
            self.stats["dead_servers"].append(self.names[i])
            alive = len(self.generators) - len(self._dead)
        logger.warning("server %s failed (%s); its %d tree(s) move to the %d other live server(s)",
                       self.names[i], err, len(moved), alive)  # fmt: skip

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        failed_on: Counter = Counter()  # request index → servers that failed it
        while pending:
            batch: Counter = Counter()
            groups: dict[int, list[int]] = defaultdict(list)
            for k in pending:
                i = self._pick(requests[k].affinity, batch)
                batch[i] += 1
                groups[i].append(k)
            futures = {
                i: self._pool.submit(self.generators[i].generate, [requests[k] for k in ks])
                for i, ks in groups.items()
            }
            pending = []
            for i, future in futures.items():
                try:
                    out = future.result()
                except BackendUnavailable as err:
                    if any(failed_on[k] for k in groups[i]):
                        # the same requests failed on a second server: blame the requests, not the servers
                        raise BackendUnavailable(
                            f"{len(groups[i])} request(s) failed on two servers ({err}); not moving them to a third"
                        ) from err
                    for k in groups[i]:
                        failed_on[k] += 1
                    self._mark_dead(i, err)
                    with self._lock:
                        self.stats["failovers"] += len(groups[i])
                    pending += groups[i]
                    continue
                with self._lock:
                    self.stats["requests_per_server"][i] += len(groups[i])
                for k, result in zip(groups[i], out):
                    results[k] = result
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for g in self.generators:
            close = getattr(g, "close", None)
            if callable(close):
                close()
        self._pool.shutdown(wait=False)
