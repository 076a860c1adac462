#!/usr/bin/env bash
# Install the application (first run only), then run the main job.
# For now the main job prints the chunks the sample documents produce; it grows into
# building the knowledge bases and serving the whole application.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec .venv/bin/python -m kb_server.cli.chunks knowledge_base/samples/content "$@"
