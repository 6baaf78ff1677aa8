#!/bin/sh
# Makes the real-MTA bounce samples in tests/samples/bounces/<mta>/ (issue #21): Postfix,
# Exim and OpenSMTPD each get four messages over SMTP on 127.0.0.1:25 — to an
# unknown user, to a domain that does not exist (NXDOMAIN), to a full mailbox and to a
# recipient refused by policy — relay them to peer.py, which refuses them with 550 5.1.1,
# 552 5.2.2 and 550 5.7.1 (and answers every DNS question NXDOMAIN), and the bounce each MTA
# sends back to the envelope sender is kept as the sample.
#
# Usage (root, Debian; Postfix installed): tools/bounce-corpus/make.sh OUT_DIR
# Runs in private mount and network namespaces: its own loopback, /etc/hosts, resolv.conf
# and the MTAs' system users, so nothing of the machine's own mail setup is touched. Exim
# and OpenSMTPD conflict with the postfix package, so their .deb files are fetched
# with `apt-get download` and unpacked under the work folder, never installed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BOUNCE_CORPUS_INSIDE:-}" ]; then
    out=$(mkdir -p "$1" && cd "$1" && pwd)
    work=$(mktemp -d /tmp/bounce-corpus.XXXXXX)
    chmod 755 "$work"
    # The packages, fetched before the network namespace leaves the registry out of reach.
    debs="$work/debs"; mkdir -p "$debs" "$work/root"
    (cd "$debs" && apt-get download exim4-daemon-light libidn12 opensmtpd >/dev/null 2>&1)
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$work/root"; done
    exec unshare --mount --net env BOUNCE_CORPUS_INSIDE=1 "$0" "$out" "$work"
fi
out=$1
work=$2
root="$work/root"
ip link set lo up

# --- the namespace's own /etc pieces -------------------------------------------------------
mkdir -p "$work/empty"
cp /etc/passwd "$work/passwd"; cp /etc/group "$work/group"
for user in Debian-exim opensmtpd opensmtpq; do
    grep -q "^$user:" "$work/passwd" || echo "$user:x:65534:65534::$work/empty:/usr/sbin/nologin" >>"$work/passwd"
done
for group in Debian-exim opensmtpd opensmtpq; do
    grep -q "^$group:" "$work/group" || echo "$group:x:65534:" >>"$work/group"
done
printf '127.0.0.1 localhost mail.acme.example mail\n' >"$work/hosts"
printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n' >"$work/resolv.conf"
printf 'mail.acme.example\n' >"$work/mailname"
mount --bind "$work/passwd" /etc/passwd
mount --bind "$work/group" /etc/group
mount --bind "$work/hosts" /etc/hosts
mount --bind "$work/resolv.conf" /etc/resolv.conf
# Exim re-executes itself as /usr/sbin/exim4 with a purged environment: the unpacked
# binaries and libraries appear in the system's folders, in this namespace only.
mount -t overlay overlay -o "lowerdir=$root/usr/sbin:/usr/sbin" /usr/sbin
mount -t overlay overlay -o "lowerdir=$root/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" /usr/lib/x86_64-linux-gnu


# --- the far side --------------------------------------------------------------------------
caught="$work/caught"; mkdir -p "$caught"
python3 "$here/peer.py" "$caught" &
peer=$!
trap 'kill $peer 2>/dev/null || true' EXIT
sleep 1

CASES=${CASES:-"user_unknown:unknown-user@example.net host_unknown:reader@no-such-domain.example.org mailbox_full:full-mailbox@example.net policy_block:blocked-sender@example.net"}

# Sends each case and waits for its bounce; $1 names the MTA.
catch_all() {
    mta=$1; n=0
    mkdir -p "$out/$mta"
    for case in $CASES; do
        name=${case%%:*}; rcpt=${case#*:}; n=$((n + 1))
        rm -f "$caught"/*.eml
        python3 "$here/submit.py" "$rcpt" "$n"
        waited=0
        while [ -z "$(ls "$caught")" ] && [ $waited -lt 45 ]; do
            sleep 1; waited=$((waited + 1))
            if [ $((waited % 5)) = 0 ]; then "${mta}_flush"; fi
        done
        file=$(ls "$caught"/*.eml 2>/dev/null | head -1)
        if [ -z "$file" ]; then echo "$mta: no bounce for $name" >&2; continue; fi
        sleep 1
        # The machine's own name, wherever an MTA wrote it, becomes an example one.
        sed "s/$(hostname)/mail.acme.example/g" "$file" >"$out/$mta/$name.eml"
        echo "$mta: $name"
    done
}

# --- Postfix (the installed one, its own configuration and queue) --------------------------
postfix_run() {
    d="$work/postfix"; mkdir -p "$d/conf" "$d/queue" "$d/data"; chown postfix "$d/data"
    cat >"$d/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
myhostname = mail.acme.example
mydomain = acme.example
myorigin = acme.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:$d/conf/transport
maillog_file = $d/maillog
maillog_file_prefixes = $d
biff = no
CF
    printf 'example.net smtp:[127.0.0.1]:2525\nacme.example smtp:[127.0.0.1]:2525\n' >"$d/conf/transport"
    sed -n '/^smtp *inet/,$p' /usr/share/postfix/master.cf.dist | grep -v '^#' \
        | sed 's/^smtp *inet *n *- *y/127.0.0.1:25 inet n - n/; s/^\([a-z]* *unix *[-n] *[-n] *\)y/\1n/' >"$d/conf/master.cf"
    postfix -c "$d/conf" start
    catch_all postfix
    postfix -c "$d/conf" stop
}

# --- Exim (Debian's exim4-daemon-light, unpacked) ------------------------------------------
exim_run() {
    d="$work/exim"; mkdir -p "$d/spool" "$d/log"; chmod 777 "$d/spool" "$d/log"
    cat >"$d/exim.conf" <<CF
primary_hostname = mail.acme.example
qualify_domain = acme.example
spool_directory = $d/spool
log_file_path = $d/log/%slog
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
local_interfaces = 127.0.0.1
daemon_smtp_ports = 25
acl_smtp_rcpt = acl_check_rcpt
host_lookup =
rfc1413_hosts =
begin acl
acl_check_rcpt:
  accept hosts = 127.0.0.1
  deny
begin routers
static:
  driver = manualroute
  domains = example.net : acme.example
  transport = remote_smtp
  route_list = * 127.0.0.1 byname
  self = send
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  no_more
begin transports
remote_smtp:
  driver = smtp
  port = 2525
  hosts_try_chunking =
begin retry
* * F,1m,1m
CF
    # The daemon only queues; queue runs started here deliver (and bounce).
    "$root/usr/sbin/exim4" -C "$d/exim.conf" -bdf -odq &
    exim=$!
    sleep 2
    catch_all exim
    kill $exim 2>/dev/null || true
}

exim_flush() { "$root/usr/sbin/exim4" -C "$work/exim/exim.conf" -qff; }
postfix_flush() { :; }
opensmtpd_flush() { :; }

# --- OpenSMTPD (unpacked) -------------------------------------------------------------------
opensmtpd_run() {
    d="$work/opensmtpd"; mkdir -p "$d"
    # Its queue, chroot and socket paths under /var are compiled in: an empty /var stands
    # there while it runs.
    mount -t tmpfs tmpfs /var
    mkdir -p /var/lib/opensmtpd/empty /var/spool/smtpd
    chmod 711 /var/spool/smtpd
    ln -s /run /var/run
    cat >"$d/smtpd.conf" <<CF
listen on 127.0.0.1 port 25 hostname mail.acme.example
table peers { "example.net", "acme.example" }
action "peer" relay host smtp://127.0.0.1:2525
action "outbound" relay
match from local for domain <peers> action "peer"
match from local for any action "outbound"
CF
    "$root/usr/sbin/smtpd" -d -f "$d/smtpd.conf" >"$d/log" 2>&1 &
    smtpd=$!
    sleep 2
    catch_all opensmtpd
    kill $smtpd 2>/dev/null || true
    sleep 1
    umount /var
}

for mta in ${MTAS:-postfix exim opensmtpd}; do
    "${mta}_run" || echo "$mta: failed" >&2
done
echo "work folder (logs): $work"
