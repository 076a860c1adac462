#!/usr/bin/env bash
# Install the application (first run only), then start it: build (or bring up to date) every
# knowledge base under knowledge_base/, the samples KB included, start the local LLM worker
# when one is configured, the API and the web UI, and print the URL to open. Ctrl-C stops
# everything. Extra arguments go to startup.py (e.g. --api only, --no-init).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
if [[ $# -eq 0 ]]; then set -- --all; fi
exec .venv/bin/python startup.py "$@"
