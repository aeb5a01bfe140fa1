#!/usr/bin/env bash
# Sets up everything fleetlens needs on a fresh Debian machine: the Debian packages the tests start
# (installed with apt when missing; a missing one that cannot be installed is an error) and the Python
# packages into .venv, exactly as pinned in requirements.lock. Idempotent: a second run only checks.
# FLEETLENS_ALLOW_MISSING_SERVERS=1 turns missing Debian packages into a warning (local runs only; the
# tests that need them then skip instead of failing).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(prometheus prometheus-alertmanager victoria-metrics postgresql chromium chromium-driver)

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# Each executable the tests run, with the package that installs it: "package: command [or command]".
missing_binaries() {
  local line pkg found a
  while IFS= read -r line; do
    pkg=${line%%:*}
    found=
    for a in ${line#*:}; do
      [ "$a" = or ] && continue
      if [[ $a == /* ]]; then
        compgen -G "$a" >/dev/null && found=1
      elif command -v "$a" >/dev/null; then
        found=1
      fi
    done
    [ -n "$found" ] || echo "${line#*: } (package $pkg)"
  done <<'EOF'
prometheus: prometheus
prometheus: promtool
victoria-metrics: victoria-metrics
prometheus-alertmanager: prometheus-alertmanager or alertmanager
prometheus-alertmanager: amtool
chromium: chromium
chromium-driver: chromedriver
postgresql: /usr/lib/postgresql/*/bin/initdb
postgresql: /usr/lib/postgresql/*/bin/pg_ctl
EOF
}

fail_or_warn() {
  if [ "${FLEETLENS_ALLOW_MISSING_SERVERS:-}" = 1 ]; then
    echo "setup: WARNING: $1 (going on: FLEETLENS_ALLOW_MISSING_SERVERS=1; the tests that need them skip)" >&2
  else
    echo "setup: ERROR: $1" >&2
    echo "setup: the tests run these real servers and fail without them; install them (as root:" \
      "apt-get install ${APT_PACKAGES[*]}), or set FLEETLENS_ALLOW_MISSING_SERVERS=1 to skip those tests" >&2
    exit 1
  fi
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    fail_or_warn "missing Debian packages: ${missing[*]}; cannot install them: not root"
  elif ! command -v apt-get >/dev/null; then
    fail_or_warn "missing Debian packages: ${missing[*]}; cannot install them: no apt-get"
  else
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      fail_or_warn "apt-get could not install: ${missing[*]} (see its messages above)"
    fi
  fi
fi
mapfile -t absent < <(missing_binaries)
if [ ${#absent[@]} -gt 0 ]; then
  list=$(printf '%s; ' "${absent[@]}")
  fail_or_warn "not found after installing the Debian packages: ${list%; }"
fi

# Python packages: the pins of requirements.lock (hash-checked), then fleetlens itself without
# dependencies. Redone whenever the lock, pyproject.toml or this script changes; packages that the
# lock no longer names are removed, so .venv holds what a fresh clone gets.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.fleetlens-installed
want=$(cat requirements.lock pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -f "$stamp"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  # (PYTHONWARNINGS: setuptools warns at every editable install that a folder may shadow the package.)
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  .venv/bin/python - <<'EOF'
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


locked = {norm(m) for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", Path("requirements.lock").read_text(), re.M)}
extra = sorted({norm(d.metadata["Name"]) for d in metadata.distributions()} - locked - {"fleetlens", "pip"})
if extra:
    print(f"setup: removing packages requirements.lock does not name: {' '.join(extra)}")
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *extra], check=True)
EOF
  echo "$want" > "$stamp"
fi
