#!/usr/bin/env python3
"""Submits one test message over SMTP to 127.0.0.1:25 for tools/bounce-corpus/make.sh.
Usage: submit.py RECIPIENT N  (N numbers the message: its Message-ID and subject)."""

import smtplib
import sys

rcpt, n = sys.argv[1], sys.argv[2]
message = (
    "From: Acme News <news@acme.example>\r\n"
    f"To: <{rcpt}>\r\n"
    f"Subject: Our November picks ({n})\r\n"
    "Date: Mon, 07 Dec 2026 17:00:00 +0000\r\n"
    f"Message-ID: <{n}.c1.herald@acme.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello, here are this month's picks.\r\n"
)
with smtplib.SMTP("127.0.0.1", 25, local_hostname="sender.acme.example", timeout=30) as smtp:
    smtp.sendmail(f"bounces+{n}.c1.tag@acme.example", [rcpt], message.encode())
