#!/usr/bin/env bash
# The whole test suite on a fresh machine (as root): installs what the tests need (Debian and
# PyPI packages, Omniboard from npm), starts the test Slurm cluster, runs pytest, stops the cluster.
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v git >/dev/null || need_apt+=(git)
command -v pdftotext >/dev/null || need_apt+=(poppler-utils)  # the printed report's text (test_results_display)
command -v npm >/dev/null || need_apt+=(nodejs npm)  # Omniboard (tests/omniboard/install.sh)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'

# @@ service start lines (keep each idempotent; stop them in cleanup) @@
bash tests/omniboard/install.sh  # Omniboard from npm into ~/.cache/sem-test/omniboard (once)
cleanup() { bash tests/slurm/stop.sh || true; }
trap cleanup EXIT
# a real single-node Slurm (munge, MariaDB + slurmdbd, slurmctld, slurmd; apt on first use)
bash tests/slurm/start.sh
# tests that need a service (Slurm, Omniboard, Chromium) fail instead of skipping when it is missing
export SEM_REQUIRE_SERVICES=1

"$PYTHON" -m pytest "$@"
