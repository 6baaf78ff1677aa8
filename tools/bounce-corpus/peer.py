#!/usr/bin/env python3
"""The far side for tools/bounce-corpus/make.sh: a small SMTP server and a DNS server on
loopback inside the script's network namespace.

SMTP (port 2525): refuses recipients by their local part with the reply a receiving server
gives for that case, and keeps every message whose envelope sender is null (a bounce,
RFC 5321 4.5.5) as a file in OUT_DIR; other messages are accepted and dropped.
  unknown-*  550 5.1.1 no such user
  full-*     552 5.2.2 mailbox full
  blocked-*  550 5.7.1 policy refusal
DNS (UDP port 53): NXDOMAIN for every name, so a domain the MTA must look up does not exist.
"""

import os
import socket
import socketserver
import struct
import sys
import threading

OUT_DIR = sys.argv[1]

REPLIES = {
    "unknown": "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
    "full": "552 5.2.2 <{rcpt}>: Recipient address rejected: Mailbox full, quota exceeded",
    "blocked": "550 5.7.1 <{rcpt}>: Recipient address rejected: Message refused by local policy",
}


class Smtp(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        self.reply("220 mx.example.net ESMTP test peer")
        sender, rcpts = None, []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                if verb == "EHLO":
                    self.reply("250-mx.example.net")
                    self.reply("250-8BITMIME")
                    self.reply("250 ENHANCEDSTATUSCODES")
                else:
                    self.reply("250 mx.example.net")
            elif verb == "MAIL":
                sender = line.split(":", 1)[1].split()[0].strip("<>")
                rcpts = []
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpt = line.split(":", 1)[1].split()[0].strip("<>")
                kind = rcpt.split("@")[0].split("-")[0].lower()
                if kind in REPLIES:
                    self.reply(REPLIES[kind].format(rcpt=rcpt))
                else:
                    rcpts.append(rcpt)
                    self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if not rcpts:
                    self.reply("554 5.5.1 Error: no valid recipients")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    raw = self.rfile.readline()
                    if not raw or raw in (b".\r\n", b".\n"):
                        break
                    data.append(raw[1:] if raw.startswith(b"..") else raw)
                if sender == "":
                    keep(b"".join(data))
                self.reply("250 2.0.0 Ok: queued")
            elif verb == "RSET":
                sender, rcpts = None, []
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("250 2.0.0 Ok")


LOCK = threading.Lock()


def keep(message):
    with LOCK:
        n = len(os.listdir(OUT_DIR)) + 1
        with open(os.path.join(OUT_DIR, "%03d.eml" % n), "wb") as f:
            f.write(message)


def dns():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    while True:
        query, peer = sock.recvfrom(512)
        if len(query) < 12:
            continue
        ident, flags = struct.unpack(">HH", query[:4])
        # The question: labels up to the root, then QTYPE and QCLASS (RFC 1035 4.1.2).
        end = 12
        while end < len(query) and query[end] != 0:
            end += query[end] + 1
        question = query[12:end + 5]
        # QR=1, the opcode and RD copied, RA=1, RCODE=3 (NXDOMAIN).
        answer_flags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
        sock.sendto(struct.pack(">HHHHHH", ident, answer_flags, 1, 0, 0, 0) + question, peer)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


threading.Thread(target=dns, daemon=True).start()
Server(("127.0.0.1", 2525), Smtp).serve_forever()
