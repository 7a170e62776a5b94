"""The Hub layer beneath every stage: push treecot datasets to the Hugging Face Hub (or a local folder in Hub
layout), load them back by version, redact secrets, render cards, check repository ids.

One dataset repository holds the configs ``trees``, ``sft`` and ``dpo`` (and ``problems``), each as
``data/<config>/<split>-NNNNN-of-NNNNN.parquet`` with a README whose YAML ``configs`` lists them, so
``datasets.load_dataset(repo, "dpo", revision="v1")`` works.

Versioning::

    main ─────────────●──────────────────●        (latest complete run, when update_main=True)
    run-<hash12>  ─●──●──● (trees, sft, dpo, then README + treecot_push.json)   ← one branch per config hash
                         └─ tag v1                (created only after the complete push)

* Every run goes to the branch :func:`branch_name` (``run-`` + 12 characters of its config hash). A
  branch is *complete* when its last commit wrote :data:`MARKER_FILE` (with the card); a rerun of a
  complete branch is skipped (``force=True`` overwrites it), a rerun of an incomplete one (an
  interrupted push) completes it: each config is one idempotent commit, unchanged files are not
  re-uploaded.
* ``tag`` is created only once the whole push succeeded, so a tag never names partial data.
* Every Hub call is retried with exponential backoff on connection errors, timeouts, 429 and 5xx
  (:class:`RetryPolicy`).

Without a token and without an endpoint, or with ``local_dir=``, the same steps write the Hub layout into a
local folder (default ``$TREECOT_CACHE/hub/datasets/<repo_id>``), safe under concurrent writers and crashes
(see `treecot.hub.targets`).

Secrets: :func:`redact` is applied to the card, the marker and every logged message, and the pushed
datasets are scanned for known secret values (``HF_TOKEN`` & co.) and scrubbed before upload.

Modules: `ids` (repository ids), `redact` (secrets), `retry` (backoff), `targets` (Hub repository and local
folder), `versions` (push, load, versions, lock), `cards` (what dataset and model cards share), `dataset_card`
(the card a push writes).

Other stages call::

    from treecot.hub import push_dataset, load_versioned, list_versions, redact
    result = push_dataset("me/treecot-gsm8k", {"trees": trees, "sft": sft, "dpo": dpo},
                          card={"recipe": recipe, "models": {...}, "seeds": {...}, "yield": {...},
                                "cost": {...}},
                          config_hash=run.config_hash, tag="v1",
                          extra_files={"histograms/sft_lengths.png": png_bytes})
    dpo = load_versioned("me/treecot-gsm8k", "dpo", revision="v1", split="train")
"""

from treecot.hub.dataset_card import card_metadata, render_dataset_card, size_category
from treecot.hub.ids import check_repo_id, is_repo_id
from treecot.hub.redact import REDACTED, known_secrets, redact
from treecot.hub.retry import RetryPolicy, is_retryable, with_retries
from treecot.hub.targets import (
    LOCAL_LOCK_FILE,
    LOCAL_REFS_FILE,
    MARKER_FILE,
    PushResult,
    Versions,
    default_local_dir,
)
from treecot.hub.versions import (
    MAX_SHARD_BYTES,
    branch_name,
    list_versions,
    load_versioned,
    push_dataset,
    quiet_datasets,
    write_lock,
)

__all__ = [
    "LOCAL_LOCK_FILE",
    "LOCAL_REFS_FILE",
    "MARKER_FILE",
    "MAX_SHARD_BYTES",
    "REDACTED",
    "PushResult",
    "RetryPolicy",
    "Versions",
    "branch_name",
    "card_metadata",
    "check_repo_id",
    "default_local_dir",
    "is_repo_id",
    "is_retryable",
    "known_secrets",
    "list_versions",
    "load_versioned",
    "push_dataset",
    "quiet_datasets",
    "redact",
    "render_dataset_card",
    "size_category",
    "with_retries",
    "write_lock",
]
