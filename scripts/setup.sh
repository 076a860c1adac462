#!/usr/bin/env bash
# Idempotent set-up for a fresh machine (Debian, Python >= 3.10):
#   Debian packages -> .venv -> CPU torch first -> the package with its extras.
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

runtime_debs=(libgl1 libglib2.0-0)   # opencv (pulled in by RapidOCR) links against these
# a CJK TrueType font to render test images and PDFs; the browser for tests/e2e
test_debs=(fonts-wqy-zenhei chromium)
extras="ocr,ui,llm"
debs=("${runtime_debs[@]}")
if ((want_test)); then
    debs+=("${test_debs[@]}")
    extras="$extras,pg,dev"
fi

missing=()
for deb in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
done
if ((${#missing[@]})); then
    sudo=""
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
    for candidate in python3.11 python3.12 python3.10 python3; do
        if command -v "$candidate" >/dev/null; then python_bin="$candidate"; break; fi
    done
fi
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup: Python >= 3.10 is required ($python_bin is older)" >&2; exit 1; }

[[ -x .venv/bin/python ]] || "$python_bin" -m venv .venv
pip_install() {
    # Some machines' pip configuration names extra index folders that do not exist; pip then
    # prints one "is ignored" warning per package, burying real messages.
    .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

stamp=.venv/.kb-setup
wanted="$(sha256sum pyproject.toml | cut -c1-16) $extras"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    # CPU torch before anything that depends on it, so no CUDA build is pulled in.
    .venv/bin/python -c 'import torch' 2>/dev/null || pip_install torch==2.13.0
    pip_install -e ".[${extras}]"
    echo "$wanted" >"$stamp"
fi
