#!/usr/bin/env bash
# Install digit_nbdev with the shipped model into .venv and start the dashboard (http://127.0.0.1:8866).
# The base install only: predict, digit_predict and the dashboard on LiteRT, no TensorFlow. An editable install
# of this checkout (tools/test.sh makes one, with the dev extras) is kept: it already serves the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/system-deps.sh
install_system_deps python3-venv
[ -x .venv/bin/python ] || python3 -m venv .venv

editable_here() {  # is digit_nbdev installed in .venv in editable mode from this checkout? (PEP 610 direct_url.json)
  .venv/bin/python -I - "$PWD" <<'EOF' 2>/dev/null  # -I: not the checkout's own digit_nbdev.egg-info
import json, sys
from importlib.metadata import distribution
from pathlib import Path
from urllib.parse import unquote, urlparse
d = json.loads(distribution('digit_nbdev').read_text('direct_url.json') or '{}')
u = urlparse(d.get('url', ''))
here = u.scheme == 'file' and Path(unquote(u.path)).resolve() == Path(sys.argv[1]).resolve()
sys.exit(0 if here and d.get('dir_info', {}).get('editable') else 1)
EOF
}

if editable_here; then
  # Keep it; refresh it (still editable) only if the dashboard's requirements are no longer all there.
  .venv/bin/python -I -c 'import digit_nbdev.dashboard' 2>/dev/null || .venv/bin/python -m pip install -q -e .
else
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q .
fi
exec .venv/bin/digit_app "$@"
