#!/usr/bin/env bash
set -euo pipefail
echo "run_finetune.sh: this stage is not implemented yet (see the pipeline issue)." >&2
exit 2
