#!/usr/bin/env bash
# Screenshots of what comes back, in a real Herald window under Xvfb: the campaign library, the
# results of a finished campaign with bounces and failures, Publish after "Check mailbox", and
# the suppression list. Three campaigns live in ~/Campaigns of a throwaway home; the last one
# goes out through scripts/relay_that_bounces.py, a relay that refuses some recipients and later
# returns bounces, a complaint, an unsubscribe and an auto-reply into a Maildir served by a real
# Dovecot. Needs: xvfb, xdotool, imagemagick, dovecot-imapd, python3.
# Writes assets/screenshots/{library,results,mailbox,suppression}.png.
# HERALD=path/to/herald uses that binary instead of building a release one.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/assets/screenshots"
mkdir -p "$out"
work="$(mktemp -d)"
chmod 755 "$work"
display=":78"
smtp_port=2627
imap_port=2143
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
db="$HOME/.local/share/herald/herald.db"
mkdir -p "$HOME/Campaigns" "$(dirname "$db")"

# Dovecot, unprivileged on loopback (as tests/support/dovecot.rs runs it), plain IMAP.
mail="$work/mail"
mkdir -p "$mail/run" "$mail/state" "$mail/home/Maildir/"{cur,new,tmp}
if [ "$(id -u)" = "0" ]; then
    internal=nobody group=nogroup uid=65534 gid=65534
else
    internal="$(id -un)" group="$(id -gn)" uid="$(id -u)" gid="$(id -g)"
fi
chmod -R 755 "$mail"
chown -R "$uid:$gid" "$mail/home"
echo "bounces:{PLAIN}shots-secret::::$mail/home::" > "$mail/passwd"
chmod 644 "$mail/passwd"
cat > "$mail/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $mail/run
state_dir = $mail/state
log_path = $mail/log
default_internal_user = $internal
default_internal_group = $group
default_login_user = $internal
first_valid_uid = 0
first_valid_gid = 0
disable_plaintext_auth = no
ssl = no
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = $mail/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$mail/home
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
/usr/sbin/dovecot -F -c "$mail/dovecot.conf" &
pids+=($!)
python3 scripts/relay_that_bounces.py "$smtp_port" "$mail/home/Maildir" &
pids+=($!)
sleep 1
export HERALD_SHOTS_IMAP=shots-secret

# Three campaigns from the example: an old newsletter (sent, clean), this month's sale (sent
# through the relay that bounces) and a welcome series (imported, not sent yet).
make_campaign() { # name, subject, people, special
    local dir="$HOME/Campaigns/$1"
    mkdir -p "$dir"
    cp assets/example/body.html assets/example/body.txt "$dir/"
    python3 - "$dir/list.csv" "$3" "$4" <<'PY'
import sys
first = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
         "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera"]
last = ["Garcia", "Smith", "Müller", "Rossi", "Dubois", "Kowalski", "Tanaka", "Silva", "Novak",
        "Jensen", "Okafor", "Larsen", "Moreau", "Costa", "Weber", "Haddad"]
domains = ["example.com", "example.org", "example.net", "mail.example", "inbox.example",
           "post.example"]
cities = ["Paris", "Lyon", "Berlin", "Boston", "Osaka", "Lima", "Oslo", "Porto"]
people, special = int(sys.argv[2]), sys.argv[3] == "yes"
rows = []
for n in range(people):
    f, l = first[n % len(first)], last[(n * 7) % len(last)]
    rows.append([f"{f}.{l}{n}".lower().replace("é", "e").replace("ü", "u") + "@" + domains[n % len(domains)], f])
if special:
    for prefix, count in [("nouser", 31), ("policy", 9), ("full", 17), ("gone", 46), ("moved", 12),
                          ("busy", 14), ("spam", 3), ("leave", 7), ("away", 5)]:
        for n in range(count):
            rows.append([f"{prefix}.{first[n % len(first)].lower()}{n}@{domains[n % len(domains)]}".replace("é", "e"),
                         first[n % len(first)]])
    for n in range(6):
        rows.append([f"{first[n].lower()}.{last[n].lower()}@outlook.example".replace("é", "e").replace("ü", "u"), first[n]])
with open(sys.argv[1], "w") as out:
    out.write("email,first_name,city,plan\n")
    for n, (email, name) in enumerate(rows):
        out.write(f"{email},{name},{cities[n % len(cities)]},{'pro' if n % 3 == 0 else 'free'}\n")
PY
    cat > "$dir/campaign.toml" <<EOF
[message]
from = "Acme News <news@acme.example>"
reply_to = "help@acme.example"
subject = "$2"
html = "body.html"
text = "body.txt"
list_id = "Acme News <news.acme.example>"

[recipients]
csv = "list.csv"
email_column = "email"

[delivery]
mode = "relay"
connections = 8
max_attempts = 1

[[relay]]
name = "acme-relay"
host = "127.0.0.1"
port = $smtp_port
security = "none"

[bounces]
host = "127.0.0.1"
port = $imap_port
security = "none"
username = "bounces"
password_env = "HERALD_SHOTS_IMAP"
return_path = "bounces@acme.example"

[unsubscribe]
url = "https://u.acme.example/u/{token}"
EOF
}
make_campaign november-picks '{{ or(first_name, \"Friend\") }}, our November picks' 2400 no
make_campaign december-sale '{{ or(first_name, \"Friend\") }}, 30 % off until Sunday' 3100 yes
make_campaign welcome-series 'Welcome to Acme, {{ or(first_name, \"friend\") }}' 640 no
"$HERALD" send "$HOME/Campaigns/november-picks/campaign.toml" --db "$db" >/dev/null
"$HERALD" send "$HOME/Campaigns/december-sale/campaign.toml" --db "$db" >/dev/null
"$HERALD" import "$HOME/Campaigns/welcome-series/campaign.toml" --db "$db" >/dev/null

Xvfb "$display" -screen 0 1280x860x24 >/dev/null 2>&1 &
pids+=($!)
sleep 1
export DISPLAY="$display"
unset WAYLAND_DISPLAY
"$HERALD" "$HOME/Campaigns/december-sale/campaign.toml" --db "$db" >/dev/null 2>&1 &
pids+=($!)
sleep 6

click() { xdotool mousemove "$1" "$2" click 1; sleep "${3:-1}"; }
shot() { import -window root "$out/$1.png"; }
# The tab row (y=50): Campaigns 50, Compose, Recipients, Publish 300, Results 370, Suppression list 465.
click 300 50 2
# "Check mailbox", the first button of the Bounces and unsubscribes section.
click 60 245 4
shot mailbox
click 370 50 3
shot results
click 465 50 2
shot suppression
click 50 50 2
shot library
echo "screenshots written to $out"
