#!/usr/bin/env bash
# RSS and CPU of `gridgate gateway` running as aarch64 code (qemu-user) against the example site's
# devices emulated on the host and a host Mosquitto. Emulated: figures are INDICATIVE only (qemu's
# translation costs CPU; RSS includes qemu's own few MB). Needs .ci/aarch64-run.sh's work dir: make one
# with `.ci/aarch64-run.sh WORKDIR` (root, 1-3 minutes) and pass the same WORKDIR here.
#   bench/bench_aarch64_gateway.sh WORKDIR [SITE.yaml | POINTS] [SECONDS]
# POINTS (e.g. 10000): bench_gateway.py's synthetic site of that many Modbus points on 20 devices,
# values changing every poll (deadband 0), polled every $POLL s (default 5).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?the work dir of .ci/aarch64-run.sh}; site_file=${2:-$here/configs/primary-substation.yaml}; secs=${3:-30}
root="$work/root"; rt="$work/site-rt"; pkg="$work/pkg"
if [ ! -x "$root/usr/bin/python3.11" ] || [ ! -d "$pkg/firmware_sim" ]; then  # the C core, cross-compiled there
  echo "bench_aarch64_gateway: $work is not a work dir of .ci/aarch64-run.sh (no aarch64 Python or firmware_sim);" \
       "make it first: .ci/aarch64-run.sh $work" >&2; exit 2
fi
command -v qemu-aarch64-static >/dev/null || { echo "bench_aarch64_gateway: qemu-aarch64-static is missing (apt-get install qemu-user-static)" >&2; exit 2; }
if [[ "$site_file" =~ ^[0-9]+$ ]]; then
  points=$site_file; site_file="$work/site-$points-p${POLL:-5}.yaml"
  "$here/.venv/bin/python" -c "import sys, yaml; sys.path[:0] = ['$here', '$here/bench']; from bench_gateway import site
yaml.safe_dump(site($points, 20, float('${POLL:-5}')), open('$site_file', 'w'), sort_keys=False)"
fi
# gridgate's own dependencies (pyproject.toml), as aarch64 wheels; fetched again when that list changes
deps=$(cd "$here" && "$here/.venv/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
if [ "$(cat "$rt/.deps" 2>/dev/null)" != "$deps" ]; then
  rm -rf "$rt" "$work/wheels-rt"
  mapfile -t reqs <<<"$deps"
  "$here/.venv/bin/python" -m pip download -q --only-binary=:all: --platform manylinux2014_aarch64 \
      --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --python-version 3.11 --implementation cp \
      --abi cp311 --abi abi3 --abi none -d "$work/wheels-rt" "${reqs[@]}"
  mkdir -p "$rt"; for w in "$work"/wheels-rt/*.whl; do python3 -m zipfile -e "$w" "$rt/"; done
  printf '%s' "$deps" >"$rt/.deps"
fi
rm -rf "$pkg/gateway" "$pkg/configs"; cp -r "$here/gateway" "$pkg/gateway"; cp -r "$here/configs" "$pkg/configs"
port=$("$here/.venv/bin/python" -c "from gateway.runtime import free_port; print(free_port())")
mosquitto -p "$port" >/dev/null 2>&1 & mq=$!
"$here/.venv/bin/gridgate" emulate --config "$site_file" --no-fault-api >/dev/null 2>&1 & emu=$!
trap 'kill $mq $emu 2>/dev/null; wait $mq $emu 2>/dev/null || true' EXIT
sleep 5
cd "$pkg"
PYTHONPATH="$pkg:$rt" qemu-aarch64-static -L "$root" "$root/usr/bin/python3.11" -m gateway.cli gateway --config "$site_file" \
    --broker "mqtt://127.0.0.1:$port" --duration "$secs" >"$work/gw.out" 2>"$work/gw.err" & gw=$!
peak=0; ticks=0; sleep 2
while kill -0 $gw 2>/dev/null; do
  rss=$(awk '/VmRSS/{print $2}' /proc/$gw/status 2>/dev/null || echo 0); [ "${rss:-0}" -gt "$peak" ] && peak=$rss
  ticks=$(awk '{print $14+$15}' /proc/$gw/stat 2>/dev/null || echo "$ticks"); sleep 1
done
rc=0; wait $gw || rc=$?
if [ "$rc" != 0 ]; then
  echo "bench_aarch64_gateway: the aarch64 gateway exited with $rc; the end of $work/gw.err:" >&2; tail -5 "$work/gw.err" >&2; exit 1
fi
hz=$(getconf CLK_TCK)
stats=$(grep -o 'stopped; .*' "$work/gw.out" | cut -d' ' -f2-)
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "aarch64 (qemu-user, indicative) gateway on $(basename "$site_file") for ${secs}s: peak RSS $((peak/1024)) MB," \
     "CPU $(awk -v t="$ticks" -v hz="$hz" -v s="$secs" 'BEGIN{printf "%.1f", 100*t/hz/s}') % of one core; $stats"
