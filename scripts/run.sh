#!/usr/bin/env bash
# Install the application (first run only), then run the main job: build (or bring up to
# date) every knowledge base under knowledge_base/, the samples KB included. Unchanged files
# are not embedded again, so a second run takes seconds. Extra arguments go to init_database.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec .venv/bin/python init_database.py --recreate-vs "$@"
