#!/usr/bin/env bash
# Renders a run's report.html in headless Chromium to a PNG, so a person can look at it.
#   scripts/screenshot-report.sh RUN_DIR [OUT.png]
# Needs Debian's chromium (apt-get install chromium). The page is opened from disk with
# Chromium's background networking off: the report must render with no network at all.
set -euo pipefail
dir="${1:?run folder}"
png="${2:-$dir/report.png}"
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1040,4200 \
  --screenshot="$(realpath -m "$png")" "file://$(realpath "$dir")/report.html" 2>/dev/null
echo "wrote $png"
