#!/usr/bin/python3
"""Readiness of a socket whose data the shim holds: the server reads a 300-byte message 7 bytes
at a time, waiting before each read with select (first 100 bytes), poll (next 100) and epoll
(last 100). Under a module that keeps ingress data in the shim (identity strips a header and
hands the program less than it asked of the kernel), the kernel's queue is empty while the
program still has bytes to read: each wait must still see the socket readable.

  readiness_probe.py server ADDR PORT OUT     one connection; writes JSON to OUT
  readiness_probe.py client ADDR PORT         sends the message, waits for the server to close
"""
import json
import select
import socket
import sys
import time

MSG = bytes((i * 31 + 7) & 0xFF for i in range(300))


def server(addr, port, out):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    ls.settimeout(20)
    c, _ = ls.accept()
    c.setblocking(False)
    got = b""
    timeouts = {"select": 0, "poll": 0, "epoll": 0}
    p = select.poll()
    p.register(c, select.POLLIN)
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLIN)
    deadline = time.monotonic() + 20
    while len(got) < len(MSG) and time.monotonic() < deadline:
        how = "select" if len(got) < 100 else "poll" if len(got) < 200 else "epoll"
        if how == "select":
            ready = bool(select.select([c], [], [], 2)[0])
        elif how == "poll":
            ready = bool(p.poll(2000))
        else:
            ready = bool(ep.poll(2))
        if not ready:
            timeouts[how] += 1
            continue
        try:
            d = c.recv(min(7, (100 - len(got) % 100) or 7))
        except BlockingIOError:
            continue
        if not d:
            break
        got += d
    c.close()
    with open(out, "w") as f:
        json.dump({"timeouts": timeouts, "data_ok": got == MSG, "got": len(got)}, f)


def client(addr, port):
    s = socket.create_connection((addr, port), timeout=10)
    s.sendall(MSG)
    s.settimeout(25)
    try:
        s.recv(1)  # until the server closes
    except OSError:
        pass
    s.close()


if sys.argv[1] == "server":
    server(sys.argv[2], int(sys.argv[3]), sys.argv[4])
else:
    client(sys.argv[2], int(sys.argv[3]))
