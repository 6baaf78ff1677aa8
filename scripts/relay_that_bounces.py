#!/usr/bin/env python3
"""A relay for the screenshots: answers Herald over SMTP as a real relay would, and later
"returns" what real mail brings back, as files in a Maildir that Dovecot serves.

Usage: relay_that_bounces.py PORT MAILDIR

By the recipient's local part:
  nouser*  550 5.1.1 at RCPT (failed)        policy*  550 5.7.1 at RCPT (failed)
  full*    452 4.2.2 at RCPT (deferred)
  gone*    accepted, then an RFC 3464 hard bounce (5.1.1)
  moved*   accepted, then a plain-text Exim-style hard bounce (5.1.6 moved)
  busy*    accepted, then a soft bounce (4.2.2 mailbox full)
  *@outlook.example  accepted, then 5.7.515 (blocked: authentication) from Outlook
  spam*    accepted, then an RFC 5965 complaint
  leave*   accepted, then a mail to the message's List-Unsubscribe mailto
  away*    accepted, then an RFC 3834 vacation reply
Everything else is accepted and stays delivered.
"""

import asyncio
import os
import re
import sys
import time

PORT = int(sys.argv[1])
MAILDIR = sys.argv[2]
serial = 0


def deliver(raw: str) -> None:
    global serial
    serial += 1
    name = f"{int(time.time())}.M{serial}P{os.getpid()}.shots"
    tmp = os.path.join(MAILDIR, "tmp", name)
    with open(tmp, "w", newline="") as f:
        f.write(raw.replace("\n", "\r\n"))
    os.rename(tmp, os.path.join(MAILDIR, "new", name))


def dsn(return_path, failed, status, diagnostic, reporter="mx.example.org"):
    return f"""Return-Path: <>
Delivered-To: {return_path}
From: Mail Delivery System <MAILER-DAEMON@{reporter}>
To: {return_path}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{serial}.{status}@{reporter}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="RB"

--RB
Content-Type: text/plain

This is the mail system at host {reporter}. Your message could not be delivered.

--RB
Content-Type: message/delivery-status

Reporting-MTA: dns; {reporter}

Final-Recipient: rfc822; {failed}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--RB--
"""


def returned(mail_from, rcpt, data):
    local = rcpt.split("@")[0]
    domain = rcpt.split("@")[-1]
    if local.startswith("gone"):
        deliver(dsn(mail_from, rcpt, "5.1.1", f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"))
    elif local.startswith("moved"):
        deliver(f"""Return-Path: <>
Delivered-To: {mail_from}
From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: {mail_from}
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {rcpt}
    host mx.example.net [192.0.2.25]
    SMTP error from remote mail server after RCPT TO:<{rcpt}>:
    550 5.1.6 Recipient no longer on server
""")
    elif local.startswith("busy"):
        deliver(dsn(mail_from, rcpt, "4.2.2", f"452 4.2.2 <{rcpt}>: Mailbox full"))
    elif domain == "outlook.example":
        deliver(dsn(mail_from, rcpt, "5.7.515",
                    "550 5.7.515 Access denied, sending domain acme.example does not meet the "
                    "required authentication level (protection.outlook.com)",
                    reporter="protection.outlook.example"))
    elif local.startswith("spam"):
        deliver(f"""Return-Path: <>
Delivered-To: {mail_from}
From: Mail AntiSpam Feedback <feedback@arf.mail.example>
To: {mail_from}
Subject: FW: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="FB"

--FB
Content-Type: text/plain

This is an email abuse report.

--FB
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Example-Feedback/1.0
Version: 1
Original-Mail-From: <{mail_from}>
Original-Rcpt-To: <{rcpt}>

--FB
Content-Type: message/rfc822

{data.split(chr(13) + chr(10) + chr(13) + chr(10))[0]}

--FB--
""")
    elif local.startswith("leave"):
        found = re.search(r"<mailto:([^>?]+)", data)
        if found:
            deliver(f"""Delivered-To: {found.group(1)}
From: <{rcpt}>
To: {found.group(1)}
Subject: unsubscribe
Message-ID: <leave.{serial}@example.net>

unsubscribe
""")
    elif local.startswith("away"):
        deliver(f"""Delivered-To: {mail_from}
From: <{rcpt}>
To: {mail_from}
Subject: Out of office
Auto-Submitted: auto-replied
Message-ID: <away.{serial}@example.net>

I am away until Monday.
""")


async def session(reader, writer):
    def say(line):
        writer.write((line + "\r\n").encode())

    say("220 relay.example ESMTP")
    mail_from, rcpts = "", []
    while True:
        line = await reader.readline()
        if not line:
            break
        command = line.decode(errors="replace").strip()
        verb = command[:4].upper()
        if verb in ("EHLO", "HELO"):
            say("250-relay.example\r\n250 8BITMIME")
        elif verb == "MAIL":
            mail_from = command.split("<", 1)[-1].split(">", 1)[0]
            rcpts = []
            say("250 2.1.0 Ok")
        elif verb == "RCPT":
            rcpt = command.split("<", 1)[-1].split(">", 1)[0]
            local = rcpt.split("@")[0]
            if local.startswith("nouser"):
                say(f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table")
            elif local.startswith("policy"):
                say("550 5.7.1 Message rejected as spam by content filtering")
            elif local.startswith("full"):
                say(f"452 4.2.2 <{rcpt}>: Recipient address rejected: Mailbox full")
            else:
                rcpts.append(rcpt)
                say("250 2.1.5 Ok")
        elif verb == "DATA":
            if not rcpts:
                say("554 5.5.1 No valid recipients")
                continue
            say("354 End data with <CR><LF>.<CR><LF>")
            await writer.drain()
            lines = []
            while True:
                chunk = await reader.readline()
                if not chunk or chunk in (b".\r\n", b".\n"):
                    break
                lines.append(chunk.decode(errors="replace"))
            data = "".join(lines)
            say("250 2.0.0 Ok: queued")
            for rcpt in rcpts:
                returned(mail_from, rcpt, data)
        elif verb == "RSET":
            mail_from, rcpts = "", []
            say("250 2.0.0 Ok")
        elif verb == "QUIT":
            say("221 2.0.0 Bye")
            await writer.drain()
            break
        else:
            say("250 Ok")
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(session, "127.0.0.1", PORT)
    async with server:
        await server.serve_forever()


asyncio.run(main())
