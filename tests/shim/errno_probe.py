#!/usr/bin/python3
"""Prints, as one JSON object, how the socket calls of a non-blocking TCP client end: connect
(EINPROGRESS), recv on an empty socket (EAGAIN), send until the peer stops reading (partial
writes, then EAGAIN), a connect to a closed port (ECONNREFUSED) and a send after the peer
closed. The shim live test runs it with and without the shim and compares.

  errno_probe.py HOST PORT CLOSED_PORT
"""
import errno
import json
import select
import socket
import sys

host, port, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {}


def name(e):
    return errno.errorcode.get(e, str(e))


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setblocking(False)
out["connect"] = name(s.connect_ex((host, port)))
select.select([], [s], [], 5)
out["so_error"] = name(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)) if s.getsockopt(
    socket.SOL_SOCKET, socket.SO_ERROR) else "0"
try:
    s.recv(100)
    out["recv_empty"] = "data"
except BlockingIOError as e:
    out["recv_empty"] = name(e.errno)
chunk = b"x" * (256 << 10)
partial, full, sent = 0, 0, 0
end = None
for _ in range(2000):
    try:
        n = s.send(chunk)
    except BlockingIOError as e:
        end = name(e.errno)
        break
    sent += n
    if n < len(chunk):
        partial += 1
    else:
        full += 1
out["send_loop_end"] = end
out["partial_writes"] = partial > 0
out["sent_something"] = sent > 0
s.close()

c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.settimeout(5)
out["refused"] = name(c.connect_ex((host, closed)))
c.close()
print(json.dumps(out, sort_keys=True))
