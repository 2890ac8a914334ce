#!/usr/bin/env bash
# Builds .tmp/device/ (git-ignored) for bench/device_run.sh on the lent GPU machine, which has no
# network and no espeak-ng: cp312 wheels the device image lacks, a portable espeak-ng 1.51 (the
# Debian 12 binary, the shared libraries it loads besides glibc, English data only) and the corpora.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$ROOT/.tmp/device"
SHARED="${WHISPEROPS_SHARED_DATA:-$ROOT/data}"
rm -rf "$D" && mkdir -p "$D/espeak/bin" "$D/espeak/lib" "$D/espeak/data/espeak-ng-data" "$D/whl" "$D/data"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$D/whl" \
  jiwer==4.0.0 rapidfuzz==3.14.6 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
S=/usr/lib/x86_64-linux-gnu/espeak-ng-data
cp -r "$S"/{en_dict,intonations,phondata,phondata-manifest,phonindex,phontab,lang,voices} "$D/espeak/data/espeak-ng-data/"
cp /usr/bin/espeak-ng "$D/espeak/bin/espeak-ng.real"
for l in $(ldd /usr/bin/espeak-ng | awk '/=>/{print $3}'); do
  case "$(basename "$l")" in libc.so*|libm.so*|ld-linux*) ;; *) cp -L "$l" "$D/espeak/lib/" ;; esac
done
cat > "$D/espeak/bin/espeak-ng" <<'WRAP'
#!/bin/sh
H="$(cd "$(dirname "$0")/.." && pwd)"
LD_LIBRARY_PATH="$H/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ESPEAK_DATA_PATH="$H/data" exec "$H/bin/espeak-ng.real" "$@"
WRAP
chmod +x "$D/espeak/bin/espeak-ng"
cp -r "$SHARED/domain" "$SHARED/general" "$D/data/"
du -sh "$D"
