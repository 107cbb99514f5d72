#!/usr/bin/env bash
# The whole test suite on a fresh machine (as root): installs what the tests need (Debian and
# PyPI packages, Omniboard from npm), runs the static gates (ruff, mypy, the docs site), starts the
# test Slurm cluster, runs pytest, stops the cluster; then runs the Hydra/omegaconf/sacred tests
# again in a fresh virtualenv with every requirement at the lowest version setup.cfg allows.
# Usage: bash tests/run.sh [pytest args...]   (with pytest args: only that pytest run, no lowest run)
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

# Static gates, before any service starts: each prints its command and its time, and the first
# failure stops the run. The paths are the shipped packages (mypy's are in pyproject.toml).
gate() {
  local name=$1 start=$SECONDS
  shift
  echo "== $name: $*"
  if ! "$@"; then
    echo "== $name FAILED: $*" >&2
    exit 1
  fi
  echo "== $name passed ($((SECONDS - start)) s)"
}
PACKAGES=(sem_core hydra_plugins experiment_manager)
gate lint "$PYTHON" -m ruff check --output-format concise "${PACKAGES[@]}"
gate format "$PYTHON" -m ruff format --check "${PACKAGES[@]}"
gate types "$PYTHON" -m mypy
site_dir=$(mktemp -d)
# (NO_MKDOCS_2_WARNING: Material prints a banner about MkDocs 2 on every build)
NO_MKDOCS_2_WARNING=1 gate docs "$PYTHON" -m mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"

# @@ service start lines (keep each idempotent; stop them in cleanup) @@
bash tests/omniboard/install.sh  # Omniboard from npm into ~/.cache/sem-test/omniboard (once)
lowest_dir=""  # the lowest-versions virtualenv (below), removed on any exit
cleanup() { bash tests/slurm/stop.sh || true; rm -rf "$lowest_dir"; }
trap cleanup EXIT
# a real single-node Slurm (munge, MariaDB + slurmdbd, slurmctld, slurmd; apt on first use)
bash tests/slurm/start.sh
# tests that need a service (Slurm, Omniboard, Chromium) fail instead of skipping when it is missing
export SEM_REQUIRE_SERVICES=1

if [ $# -gt 0 ]; then
  "$PYTHON" -m pytest "$@"
  exit 0
fi
"$PYTHON" -m pytest

# The same tests against the oldest versions sem allows (tests/lowest-constraints.txt pins each
# runtime requirement at its floor): only the tests that exercise Hydra, omegaconf, sacred, pymongo
# and pandas, so it stays a few minutes. A fresh virtualenv each time, sem installed editable.
LOWEST_TESTS=(
  tests/test_hydra_suites.py         # Hydra's own sweeper/launcher suites against sem's plugins
  tests/test_launch_job_config.py    # a job's config derived as Hydra composes it (Hydra internals)
  tests/test_structured_rows.py      # rows merged into omegaconf structured configs
  tests/test_model_files.py          # model files end to end, every launcher (submitit's too)
  tests/test_seed_compat.py          # the seed's model files and commands
  tests/test_file_observer.py        # records in sacred's file layout, read by sacred
  tests/test_sacred_observers.py     # sacred's own observers attached to sem runs
  tests/test_mongo_sync.py           # pymongo, next to sacred's MongoObserver
  tests/test_results_load.py         # pandas, numpy and matplotlib
)
lowest_start=$SECONDS
lowest_dir=$(mktemp -d)
lowest_venv=$lowest_dir/venv
"$PYTHON" -m venv "$lowest_venv"
"$lowest_venv/bin/python" -m pip install -q --disable-pip-version-check \
  -c tests/lowest-constraints.txt -e '.[test]'
echo "== lowest versions: $(tr -s ' \n' ' ' < <(grep -v '^#' tests/lowest-constraints.txt))"
# the venv's bin first: tests that run `sem` get this environment's
PATH="$lowest_venv/bin:$PATH" "$lowest_venv/bin/python" -m pytest -m "not slurm" "${LOWEST_TESTS[@]}"
echo "== lowest versions passed ($((SECONDS - lowest_start)) s)"
