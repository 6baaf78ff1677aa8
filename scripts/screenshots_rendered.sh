#!/usr/bin/env bash
# The rendered preview in a real Herald window under Xvfb: a newsletter campaign (the render
# tests' reference newsletter, personalized, its logo an inline image) opened on Compose, the
# first recipient previewed in the Rendered view at desktop width, remote images off. Needs:
# xvfb, xdotool, imagemagick. Writes assets/screenshots/rendered.png.
# HERALD=path/to/herald uses that binary instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/assets/screenshots"
mkdir -p "$out"
work="$(mktemp -d)"
display=":79"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${HERALD:-}" ]; then
    cargo build --release
    HERALD="${CARGO_TARGET_DIR:-$root/target}/release/herald"
fi
export HOME="$work/home"
campaign="$HOME/Campaigns/Spring news"
mkdir -p "$campaign"
sed -e 's/Hello Ada,/Hello {{ or(first_name, "friend") }},/' \
    tests/samples/render/newsletter.html > "$campaign/newsletter.html"
convert -size 120x40 xc:'#e07a2f' -fill white -font DejaVu-Sans-Bold -pointsize 16 \
    -gravity center -annotate 0 'HERALD' "$campaign/logo.png"
echo 'Hello {{ or(first_name, "friend") }}, the seedlings are in: https://shop.example.invalid/spring' \
    > "$campaign/body.txt"
printf 'email,first_name\nada@example.com,Ada\ngrace@example.com,Grace\n' > "$campaign/list.csv"
cat > "$campaign/campaign.toml" <<'TOML'
[message]
from = "Herald Garden Co. <news@garden.example>"
subject = "{{ or(first_name, \"Friend\") }}, the seedlings are in"
html = "newsletter.html"
text = "body.txt"
inline = ["logo.png"]

[recipients]
csv = "list.csv"

[[relay]]
host = "127.0.0.1"
port = 2599
security = "none"
TOML
"$HERALD" import "$campaign/campaign.toml" --db "$work/herald.db" >/dev/null

Xvfb "$display" -screen 0 1280x860x24 >/dev/null 2>&1 &
pids+=($!)
sleep 1
export DISPLAY="$display"
unset WAYLAND_DISPLAY
"$HERALD" "$campaign/campaign.toml" --db "$work/herald.db" >/dev/null 2>&1 &
pids+=($!)
sleep 6

click() { xdotool mousemove "$1" "$2" click 1; sleep "${3:-1}"; }
# The window opens on Compose: Preview for recipient #1, then the Rendered view.
click 798 122 3
click 682 182 4

import -window root "$out/rendered.png"
echo "screenshot written to $out/rendered.png"
