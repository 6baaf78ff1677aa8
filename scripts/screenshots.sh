#!/usr/bin/env bash
# Screenshots of each tab of a real Herald window under Xvfb, with a campaign of 100,000
# recipients loaded mid-send (into Postfix's smtp-sink, slowed down so the run is visibly in
# progress). Needs: xvfb, xdotool, imagemagick, postfix (smtp-sink). Writes
# assets/screenshots/{compose,recipients,publish}.png.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/assets/screenshots"
mkdir -p "$out"
work="$(mktemp -d)"
display=":77"
port=2626
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# HERALD=path/to/herald uses that binary instead of building a release one (as the two
# scripts below do).
if [ -z "${HERALD:-}" ]; then
    cargo build --release
    HERALD="${CARGO_TARGET_DIR:-$root/target}/release/herald"
fi
herald="$HERALD"

# A campaign of 100,000 recipients built from the example.
cp assets/example/body.html assets/example/body.txt "$work/"
python3 - "$work/list.csv" <<'PY'
import sys
cities = ["Paris", "Lyon", "Berlin", "Boston", "Osaka", "Lima", "Oslo"]
with open(sys.argv[1], "w") as f:
    f.write("email,first_name,city,plan\n")
    for n in range(100_000):
        f.write(f"reader{n}@mail{n % 50}.example,Reader{n},{cities[n % len(cities)]},{'pro' if n % 3 == 0 else 'free'}\n")
PY
sed -e "s/port = 2525/port = $port/" -e 's/connections = 8/connections = 16/' \
    assets/example/campaign.toml > "$work/campaign.toml"
"$herald" import "$work/campaign.toml" --db "$work/herald.db" >/dev/null

sink_user=()
[ "$(id -u)" = "0" ] && sink_user=(-u nobody)
# -w 1: one second before each DATA reply, so the send is still going when we look.
smtp-sink "${sink_user[@]}" -w 1 "127.0.0.1:$port" 512 &
pids+=($!)
Xvfb "$display" -screen 0 1280x860x24 >/dev/null 2>&1 &
pids+=($!)
sleep 1
export DISPLAY="$display"
unset WAYLAND_DISPLAY
HOME="$work" "$herald" "$work/campaign.toml" --db "$work/herald.db" >/dev/null 2>&1 &
pids+=($!)
sleep 6

# A press held for a moment: a click shorter than one frame can be missed.
click() { xdotool mousemove "$1" "$2"; sleep 0.3; xdotool mousedown 1; sleep 0.2; xdotool mouseup 1; sleep "${3:-1}"; }
# Tabs sit at y=50: Campaigns, Compose, Recipients, Publish, Results, Suppression list; Start is
# the first button of Publish.
click 300 50
click 84 95 8
# Start asks first: the example campaign signs with no DKIM key, which check calls red before a
# first send (issue #20); "Send anyway" sits at the modal's bottom left.
click 429 516 8
import -window root "$out/publish.png"
click 222 50 3
import -window root "$out/recipients.png"
click 136 50 1
# Preview the first recipient (the Text view of the preview pane).
click 799 122 4
import -window root "$out/compose.png"
echo "screenshots written to $out"
# The library, results, Publish after "Check mailbox" and the suppression list (their own run).
HERALD="$herald" bash scripts/screenshots_feedback.sh
# The rendered preview of a newsletter in Compose (its own window and campaign).
HERALD="$herald" bash scripts/screenshots_rendered.sh
