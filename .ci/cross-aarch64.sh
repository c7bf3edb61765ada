#!/bin/sh
# Cross-compile the firmware_sim C core (no Python.h), the site YAML builder and the spool's record encoder for aarch64 with warnings as errors,
# and check that the hot loops still vectorise there.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC_AARCH64:-aarch64-linux-gnu-gcc}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
"$cc" -std=c99 -O3 -Wall -Werror -fno-math-errno -fno-trapping-math \
    -fopt-info-vec-optimized="$out/vec.txt" \
    -c "$here/firmware_sim/csrc/ggfw.c" -o "$out/ggfw-aarch64.o"
"$cc" -std=c99 -O3 -Wall -Werror -fno-math-errno -fno-trapping-math \
    -c "$here/firmware_sim/csrc/ggplant.c" -o "$out/ggplant-aarch64.o"
# the wave kernel and the changed-flag kernel must be vectorised loops
for marker in "the hot loop" "vectorised: changed flags"; do
    line=$(grep -n "$marker" "$here/firmware_sim/csrc/ggfw.c" | head -1 | cut -d: -f1)
    if ! grep -q "ggfw.c:$line:.*loop vectorized" "$out/vec.txt"; then
        echo "cross-aarch64: the loop at ggfw.c:$line ($marker) is not vectorised for aarch64" >&2
        cat "$out/vec.txt" >&2
        exit 1
    fi
done
# gateway/site/_yamlfast.c (Python's Limited API and libyaml): Python.h and yaml.h are the same on both
# architectures (LP64); yaml.h is copied alone so the cross compiler does not see the host's /usr/include
pyinc=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])" 2>/dev/null || true)
if [ -f "$pyinc/Python.h" ] && [ -f /usr/include/yaml.h ]; then
    mkdir -p "$out/yamlinc" && cp /usr/include/yaml.h "$out/yamlinc/"
    "$cc" -std=c99 -O2 -Wall -Werror -fPIC -DPy_LIMITED_API=0x030B0000 -I"$out/yamlinc" -I"$pyinc" \
        -c "$here/gateway/site/_yamlfast.c" -o "$out/yamlfast-aarch64.o"
else
    echo "cross-aarch64: _yamlfast.c not compiled (needs python3-dev and libyaml-dev)" >&2
fi
# gateway/northbound/_records.c (the spool's record encoder: Limited API and zlib's header, copied alone as yaml.h)
if [ -f "$pyinc/Python.h" ] && [ -f /usr/include/zlib.h ] && [ -f /usr/include/zconf.h ]; then
    mkdir -p "$out/zinc" && cp /usr/include/zlib.h /usr/include/zconf.h "$out/zinc/"
    "$cc" -std=c99 -O2 -Wall -Werror -fPIC -DPy_LIMITED_API=0x030B0000 -I"$out/zinc" -I"$pyinc" \
        -c "$here/gateway/northbound/_records.c" -o "$out/records-aarch64.o"
else
    echo "cross-aarch64: _records.c not compiled (needs python3-dev and zlib1g-dev)" >&2
fi
echo "cross-aarch64: ok (hot loops vectorised) -> $out/ggfw-aarch64.o"
