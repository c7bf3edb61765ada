#!/usr/bin/env bash
# ThingsBoard IoT Gateway, the peer of `bench/bench_gateway.py --peer thingsboard`, in its own venv
# (never in gridgate's: its dependencies must not meet ours). Only the bench uses it.
#   bench/setup_thingsboard.sh [VENV]     default: $TB_GATEWAY_VENV or /work/.tbvenv
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;; esac
VERSION=${TB_GATEWAY_VERSION:-3.8.5}  # the version issue 18's figures were measured against
VENV=${1:-${TB_GATEWAY_VENV:-/work/.tbvenv}}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import thingsboard_gateway" 2>/dev/null \
   || [ "$("$VENV/bin/python" -m pip show thingsboard-gateway 2>/dev/null | sed -n 's/^Version: //p')" != "$VERSION" ]; then
  "$VENV/bin/python" -m pip install -q "thingsboard-gateway==$VERSION"
fi
echo "ThingsBoard IoT Gateway $VERSION: $VENV/bin/python -m thingsboard_gateway.tb_gateway"
