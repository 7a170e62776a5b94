"""lighteval 0.13 compatibility: the subclasses and patches `treecot eval` runs lighteval through.

lighteval is imported here at the top, so this module is imported only when an evaluation runs
(`treecot.evaluation.runner` imports it lazily): ``import treecot`` and ``treecot eval --help`` never load
lighteval. The workarounds reach into lighteval's private internals (`Registry`'s task table,
``Pipeline._init_tasks_and_requests``, ``TransformersModel._padded_greedy_until`` and
``generation_config_dict``, the model's ``_cache``, the details logger's ``xxhash``), so the installed
lighteval must be the release they were written against: `SUPPORTED_LIGHTEVAL` (constraints.txt pins
0.13.0). Importing this module with another release raises
`treecot.evaluation.lighteval_version.UnsupportedLightevalVersion` before any of lighteval is imported
(`run_eval` checks the same first, before it reads a problem or loads a model).

- `TreecotRegistry`: a lighteval `Registry` holding only treecot's task configs (no built-in import);
  `TreecotPipeline` swaps it in while lighteval's own `Pipeline` loads tasks and requests.
- `shim_xxhash`: lighteval's details logger gets an ``xxh64`` that encodes ``str`` first (only when the
  installed xxhash rejects ``str``).
- `TreecotModelConfig`, `TreecotPromptManager`, `TreecotTransformersModel`: lighteval's transformers model
  built from an already loaded model, rendering each task's own chat messages (see
  `treecot.evaluation.runner` for what it changes and why).
- `BackendModel`, `MCTSDecodeModel`: lighteval models over a treecot `Generator` and over treecot's tree
  search (`treecot.evaluation.decode.mcts_decode`).
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any

from treecot.evaluation.decode import MCTSDecodeConfig, mcts_decode
from treecot.evaluation.lighteval_version import check_lighteval_version

__all__ = [
    "BackendModel",
    "MCTSDecodeModel",
    "TreecotModelConfig",
    "TreecotPipeline",
    "TreecotPromptManager",
    "TreecotRegistry",
    "TreecotTransformersModel",
    "shim_xxhash",
]

check_lighteval_version()

import lighteval.pipeline as pipeline_module  # noqa: E402
from lighteval.logging import info_loggers  # noqa: E402
from lighteval.models.abstract_model import LightevalModel  # noqa: E402
from lighteval.models.model_output import ModelResponse  # noqa: E402
from lighteval.models.transformers.transformers_model import (  # noqa: E402
    TransformersModel,
    TransformersModelConfig,
)
from lighteval.pipeline import Pipeline  # noqa: E402
from lighteval.tasks.prompt_manager import PromptManager  # noqa: E402
from lighteval.tasks.registry import Registry  # noqa: E402


def shim_xxhash() -> bool:
    """Make lighteval's details logger work with xxhash 4 (which rejects ``str``); True if a shim was set."""
    current = info_loggers.xxhash
    if getattr(current, "_treecot_shim", False):
        return True
    try:
        current.xxh64("probe")
        return False
    except TypeError:
        pass

    def xxh64(data: Any = b"", seed: int = 0):
        return current.xxh64(data.encode() if isinstance(data, str) else data, seed)

    info_loggers.xxhash = types.SimpleNamespace(xxh64=xxh64, _treecot_shim=True, wrapped=current)
    return True


class _DecodeSteps:
    """A `transformers` streamer that shows decoding progress: one tqdm bar per `generate` call (a batch),
    ticking once per new token step. `generate` calls `put` with the prompt first, then with each step's
    tokens, and `end` when the batch is done."""

    def __init__(self, n_docs: int):
        self.n_docs = n_docs
        self.batches = 0
        self.bar = None

    def put(self, value) -> None:
        if self.bar is None:  # the prompt of a new batch
            from tqdm.auto import tqdm

            self.batches += 1
            rows = int(value.shape[0]) if getattr(value, "ndim", 1) > 1 else 1
            self.bar = tqdm(desc=f"decoding batch {self.batches} ({rows} of {self.n_docs} prompts)",
                            unit=" steps", leave=False, dynamic_ncols=True)  # fmt: skip
            return
        self.bar.update(1)

    def end(self) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TreecotModelConfig(TransformersModelConfig):
    """lighteval's transformers config plus the model revision treecot computed (no Hub call)."""

    model_revision: str = ""

    def get_model_sha(self) -> str:
        return self.model_revision


class TreecotPromptManager(PromptManager):
    """Renders a treecot Doc's own chat messages (``doc.specific["messages"]``) with the chat template."""

    def prepare_prompt(self, doc):
        messages = (doc.specific or {}).get("messages")
        if self.use_chat_template and messages:
            return self.tokenizer.apply_chat_template(
                json.loads(messages), tokenize=False, add_generation_prompt=True
            )
        return super().prepare_prompt(doc)


class _RegistryOnlyCache:
    """Stands in for lighteval's `SampleCache`: the pipeline registers tasks with it; nothing is cached."""

    def _init_registry(self, registry) -> None:
        self.registry = registry


class TreecotTransformersModel(TransformersModel):
    # Generative docs are split by generation settings, never by count: None avoids lighteval's warning.
    DATASET_SPLITS = None

    @classmethod
    def wrap(cls, model, config: TreecotModelConfig) -> TreecotTransformersModel:
        self = cls.from_model(model=model, config=config, accelerator=None)
        self.generation_config_dict.pop("output_scores", None)
        if self.generation_config_dict.get("temperature", 0) > 0:
            self.generation_config_dict["do_sample"] = True
        self.prompt_manager = TreecotPromptManager(
            use_chat_template=self.use_chat_template, tokenizer=self.tokenizer, system_prompt=None
        )
        self._cache = _RegistryOnlyCache()
        return self

    def greedy_until(self, docs):
        # lighteval's own bar counts batches ("Greedy generation 0/1" for minutes on a CPU); this one
        # counts the decoding steps of the batch in flight. It rides on `generate(streamer=...)`, which
        # lighteval forwards from the generation settings.
        bar = _DecodeSteps(len(docs)) if not self.disable_tqdm else None
        if bar is not None:
            self.generation_config_dict["streamer"] = bar
        try:
            responses = self._padded_greedy_until(docs)
        finally:
            self.generation_config_dict.pop("streamer", None)
            if bar is not None:
                bar.close()
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        for response in responses:
            trimmed = []
            for tokens in response.output_tokens:
                ids = tokens.tolist() if hasattr(tokens, "tolist") else list(tokens)
                cut = next((i for i, t in enumerate(ids) if t in (eos, pad)), len(ids))
                trimmed.append(ids[:cut])
            response.output_tokens = trimmed
            if response.padded_tokens_count:  # the details show the prompt, not the batch's left padding
                response.input_tokens = list(response.input_tokens)[int(response.padded_tokens_count) :]
        return responses

    @property
    def disable_tqdm(self) -> bool:
        return not getattr(self, "show_progress", True)

    def cleanup(self):  # the model belongs to the caller: keep it alive
        return None


class BackendModel(LightevalModel):
    """A lighteval model that answers each Doc through a treecot `Generator` (the `openai` backend: any
    OpenAI-compatible server; `vllm`: vLLM's offline engine; `transformers`: in-process). The prompt is
    the Doc's chat messages under the generator's chat template, exactly as the in-process model renders
    them; all Docs go to the generator in one call, which batches (vLLM) or keeps `concurrency` requests
    in flight (servers). Greedy unless sampling settings are given; samples are seeded per Doc."""

    def __init__(self, generator, tokenizer, config, *, temperature: float, top_p: float, seed: int):
        self.config = config
        self.generator = generator
        self._tokenizer = tokenizer
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = int(seed)
        self._cache = _RegistryOnlyCache()

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def add_special_tokens(self) -> bool:
        return False

    @property
    def max_length(self) -> int:
        return int(getattr(self._tokenizer, "model_max_length", 0) or 0) or 1 << 20

    def greedy_until(self, docs):
        from treecot.backends.base import GenerationRequest

        requests = []
        for i, doc in enumerate(docs):
            messages = json.loads((doc.specific or {})["messages"])
            n = max(1, int(getattr(doc, "num_samples", 1) or 1))
            requests.append(
                GenerationRequest(
                    prompt=self.generator.apply_chat_template(messages),
                    n=n,
                    max_tokens=int(doc.generation_size),
                    stop=list(doc.stop_sequences or []),
                    temperature=self.temperature,
                    top_p=self.top_p if self.temperature > 0 else 1.0,
                    seed=self.seed + i if self.temperature > 0 else None,
                )
            )
        results = self.generator.generate(requests)
        ends = {self._tokenizer.eos_token_id, self._tokenizer.pad_token_id} - {None}

        def tokens(result, j: int, text: str) -> list[int]:
            # The ids the model generated when the backend returns them (counted like lighteval's own
            # model: up to the first EOS); re-encoding the text can count differently.
            ids = (result.extra or {}).get("token_ids")
            if ids and j < len(ids) and ids[j] is not None:
                seq = list(ids[j])
                return seq[: next((k for k, t in enumerate(seq) if t in ends), len(seq))]
            return self._tokenizer.encode(text, add_special_tokens=False)

        return [
            ModelResponse(
                text=[c.text for c in r.completions],
                output_tokens=[tokens(r, j, c.text) for j, c in enumerate(r.completions)],
            )
            for r in results
        ]

    def loglikelihood(self, docs):
        raise NotImplementedError("treecot's tasks are generative: no log-likelihood requests")

    def loglikelihood_rolling(self, docs):
        raise NotImplementedError("treecot's tasks are generative: no log-likelihood requests")


class MCTSDecodeModel(BackendModel):
    """A lighteval model that answers each Doc by confidence-valued MCTS (`decode.mcts_decode`) with
    `generator` (in-process or a backend's)."""

    def __init__(
        self,
        generator,
        tokenizer,
        config,
        decode_config: MCTSDecodeConfig,
        n_answers: int,
        trees_path=None,
        system_prompts: Mapping[str, str] | None = None,
    ):
        self.system_prompts = dict(system_prompts or {})
        self.config = config
        self.generator = generator
        self._tokenizer = tokenizer
        self.decode_config = decode_config
        self.n_answers = n_answers
        self.trees_path = trees_path
        self._cache = _RegistryOnlyCache()
        self.stats: dict[str, float] = {
            "problems": 0,
            "llm_calls": 0,
            "generated_tokens": 0,
            "rollouts": 0,
        }

    @property
    def max_length(self) -> int:
        config = getattr(getattr(self.generator, "model", None), "config", None)  # in-process only
        return int(getattr(config, "max_position_embeddings", 0) or 0) or super().max_length

    def greedy_until(self, docs):
        from treecot.evaluation.registry import eval_task

        # Grouped by evaluation task (lighteval's "treecot_<task>|0"), not by the problem's task:
        # planbench and planbench_zeroshot both hold "planbench" problems under their own system prompts.
        by_task: dict[str, list[int]] = {}
        problems = [json.loads(doc.specific["problem"]) for doc in docs]
        for i, (doc, problem) in enumerate(zip(docs, problems)):
            name = str(doc.task_name or "").split("|")[0].removeprefix("treecot_") or problem["task"]
            by_task.setdefault(name, []).append(i)
        responses: list[Any] = [None] * len(docs)
        for task_name, indices in by_task.items():
            results = mcts_decode(
                [problems[i] for i in indices],
                eval_task(task_name),
                self.generator,
                self.decode_config,
                n_answers=self.n_answers,
                progress=getattr(self, "show_progress", True),
                system_prompt=self.system_prompts.get(task_name),
            )
            for i, result in zip(indices, results):
                responses[i] = ModelResponse(
                    text=result.texts,
                    output_tokens=[self._tokenizer.encode(t, add_special_tokens=False) for t in result.texts],
                )
                stats = result.tree.stats
                self.stats["problems"] += 1
                for key in ("llm_calls", "generated_tokens", "rollouts"):
                    self.stats[key] += stats.get(key, 0)
                if self.trees_path is not None:
                    with open(self.trees_path, "a", encoding="utf-8") as f:
                        f.write(result.tree.to_json() + "\n")
        return responses


class TreecotRegistry(Registry):
    """A lighteval `Registry` over treecot's task configs only (no built-in task module is imported)."""

    configs: list = []

    def __init__(self, tasks=None, load_multilingual: bool = False, custom_tasks=None):
        self.tasks_list = self._get_full_task_list_from_input_string(tasks) if tasks else []
        self._load_multilingual = False
        self._custom_tasks = None
        self._task_registry = {c.name: c for c in self.configs}
        self.task_to_configs = self._update_task_configs()


class TreecotPipeline(Pipeline):
    """lighteval's `Pipeline`, loading tasks through `TreecotRegistry` over `task_configs`."""

    def __init__(self, *, task_configs: list, **kwargs):
        self._task_configs = list(task_configs)
        super().__init__(**kwargs)

    def _init_tasks_and_requests(self, tasks: str):
        registry = type("BoundTreecotRegistry", (TreecotRegistry,), {"configs": self._task_configs})
        original = pipeline_module.Registry
        pipeline_module.Registry = registry
        try:
            super()._init_tasks_and_requests(tasks)
        finally:
            pipeline_module.Registry = original
