#!/usr/bin/env bash
# Create .venv with every pinned dependency (uv.lock). Idempotent; the second run is a no-op check.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
UV_HOME=.cache/uv-tool
if [ ! -x "$UV_HOME/bin/uv" ] || [ "$("$UV_HOME/bin/uv" --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  "$PY" -m venv "$UV_HOME"
  "$UV_HOME/bin/pip" install -q "uv==$UV_VERSION"
fi
export UV_CACHE_DIR=${UV_CACHE_DIR:-$PWD/.cache/uv}
"$UV_HOME/bin/uv" sync --frozen --python "$PY" -q
echo "bootstrap: .venv ready ($(.venv/bin/python --version))"
