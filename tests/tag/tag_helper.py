#!/usr/bin/python3
"""A tagged TCP client for tag_live_test.py, through libl45tag (ctypes).

  tag_helper.py LIB probe                   one socket: setsockopt/getsockopt without connect;
                                            prints {"add": errno, "list": errno}
  tag_helper.py LIB malformed               bad SOL_L45 payloads on a socket holding one tag;
                                            prints {"errnos": [...], "tags": [...]}
  tag_helper.py LIB connect HOST PORT APP:VALUE...
                                            tags a socket and tries to connect within 2 s;
                                            prints {"connected": bool, "error": "..."}
  tag_helper.py LIB signing SIGN_SOCKET KEY3 KEY4 HOST PORT
                                            signed tags: a good signature, another app's key, an
                                            unknown key, a replay on another socket, an expired
                                            one, a tag not on the socket; a tag signed 50 times
                                            while another thread adds and removes another tag
                                            on the same socket; then sends 10000
                                            bytes from the signed socket and 5000 from an unsigned
                                            one
  tag_helper.py LIB forge_signed            the daemon's own option (mark signed) on a socket of
                                            ours; prints {"errno": errno, "tags": [...]}
  tag_helper.py LIB plan MAPFD HOST PORT COUNT APP:VALUE
                                            a tagged UDP socket sends COUNT datagrams to HOST;
                                            prints its egress plan as the storage map MAPFD (an
                                            inherited descriptor of l45_tags) holds it: the
                                            sequence (2 per write), family, matched rules
  tag_helper.py LIB inherit APP:VALUE       a tagged listener on 127.0.0.1 accepts one
                                            connection; prints the tags of both ends
  tag_helper.py LIB udp HOST PORT[,PORT...] COUNT APP:VALUE...
                                            a tagged UDP socket (IPv6 when HOST has a colon,
                                            ::ffff:a.b.c.d included) sends COUNT datagrams of
                                            1000 bytes (sendto, no connect), to the ports in turn
  tag_helper.py LIB many HOST PORT N APP
                                            N UDP sockets bound to one port (SO_REUSEPORT), so
                                            their datagrams have the same addresses and ports;
                                            socket i (from 1) tagged APP:i. They send 100-byte
                                            datagrams in rounds, one each a round, socket i in
                                            the first i rounds: i datagrams
  tag_helper.py LIB client HOST PORT APP:VALUE...
                                            tags a socket, connects, then obeys stdin lines:
                                            "send N", "add APP:VALUE", "remove APP:VALUE", "list",
                                            "close";
                                            answers one JSON line each.
"""
import ctypes
import json
import os
import select
import socket
import sys

SOL_L45 = 0x4C45
ADD, DEL, SET = 2, 3, 1


class Tag(ctypes.Structure):
    _fields_ = [("app", ctypes.c_uint32), ("kind", ctypes.c_uint8), ("len", ctypes.c_uint8),
                ("flags", ctypes.c_uint16), ("value", ctypes.c_uint8 * 16)]


lib = ctypes.CDLL(sys.argv[1], use_errno=True)


def make(spec):
    app, value = spec.split(":", 1)
    t = Tag()
    if value.isdigit():
        rc = lib.l45_tag_num(ctypes.byref(t), int(app), ctypes.c_uint64(int(value)))
    else:
        rc = lib.l45_tag_str(ctypes.byref(t), int(app), value.strip('"').encode())
    if rc != 0:
        raise SystemExit(f"bad tag {spec}")
    return t


def tags_of(s):
    out = (Tag * 8)()
    n = lib.l45_tag_list(s.fileno(), out, 8)
    if n < 0:
        return {"errno": ctypes.get_errno()}
    buf = ctypes.create_string_buffer(64)
    res = []
    for i in range(min(n, 8)):
        lib.l45_tag_format(ctypes.byref(out[i]), buf, 64)
        res.append({"tag": buf.value.decode(), "flags": out[i].flags})
    return res


def try_opt(s, name, payload):
    try:
        s.setsockopt(SOL_L45, name, payload)
        return 0
    except OSError as e:
        return e.errno


mode = sys.argv[2]
if mode == "probe":
    s = socket.socket()
    t = make("24:26")
    rc = lib.l45_tag_add(s.fileno(), ctypes.byref(t))
    add = 0 if rc == 0 else ctypes.get_errno()
    out = (Tag * 8)()
    rc = lib.l45_tag_list(s.fileno(), out, 8)
    print(json.dumps({"add": add, "list": 0 if rc >= 0 else ctypes.get_errno()}))
elif mode == "malformed":
    s = socket.socket()
    good = make("24:26")
    lib.l45_tag_add(s.fileno(), ctypes.byref(good))
    raw = bytes(good)

    def patched(off, val):
        b = bytearray(raw)
        b[off] = val
        return bytes(b)
    s_tag = bytes(make('5:"ab"'))
    cases = [
        (ADD, raw[:23]),                       # short
        (ADD, raw + b"\0"),                    # long
        (ADD, bytes(4) + raw[4:]),             # application 0
        (ADD, patched(4, 3)),                  # unknown kind
        (ADD, patched(5, 7)),                  # number with len 7
        (ADD, patched(6, 1)),                  # flags set by the caller
        (ADD, patched(16, 1)),                 # number with bytes past 8
        (ADD, s_tag[:10] + b" " + s_tag[11:]),  # string with a space in its length
        (ADD, s_tag[:8] + b"a\x01" + s_tag[10:]),  # non-printable
        (ADD, s_tag[:12] + b"z" + s_tag[13:]),  # byte after the string's end
        (SET, raw * 9),                        # nine tags
        (SET, raw + raw[:5]),                  # not a multiple of the tag size
        (99, raw),                             # unknown option
    ]
    errnos = [try_opt(s, name, p) for name, p in cases]
    print(json.dumps({"errnos": errnos, "tags": tags_of(s)}))
elif mode == "connect":
    s = socket.socket()
    for spec in sys.argv[5:]:
        t = make(spec)
        lib.l45_tag_add(s.fileno(), ctypes.byref(t))
    s.settimeout(2)
    try:
        s.connect((sys.argv[3], int(sys.argv[4])))
        print(json.dumps({"connected": True}))
    except OSError as e:
        print(json.dumps({"connected": False, "error": str(e)}))
elif mode == "signing":
    import struct
    import time
    sign_sock, key3, key4, host, port = sys.argv[3:8]
    os.environ["L45_TAG_SIGN_SOCKET"] = sign_sock
    sodium = ctypes.CDLL("libsodium.so.23")
    sodium.sodium_init()

    def key(path):
        k = (ctypes.c_ubyte * 64)()
        if lib.l45_tag_read_key(path.encode(), k) != 0:
            raise SystemExit(f"cannot read {path}")
        return k

    def sign_lib(s, k, *specs):
        tags = (Tag * len(specs))(*[make(x) for x in specs])
        rc = lib.l45_tag_sign(s.fileno(), tags, len(specs), k)
        return 0 if rc == 0 else ctypes.get_errno()

    def cookie(s):
        return struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, 57, 8))[0]

    def sign_raw(s_signed_for, s_sent, k, when, spec):
        """A request made by hand: signed for one socket, sent with another."""
        t = make(spec)
        msg = (b"l45-tag-sign-v1\0" + struct.pack("<IQQ", t.app, cookie(s_signed_for), when)
               + bytes(t))
        sig = (ctypes.c_ubyte * 64)()
        sodium.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), k)
        req = json.dumps({"cmd": "sign", "app": t.app, "time": when, "tags": bytes(t).hex(),
                          "sig": bytes(sig).hex()}).encode()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        u.settimeout(5)
        u.connect(sign_sock)
        socket.send_fds(u, [req], [s_sent.fileno()])
        reply = json.loads(u.recv(4096))
        u.close()
        return 0 if reply.get("ok") else reply.get("errno", -1)

    k3, k4 = key(key3), key(key4)
    stranger = (ctypes.c_ubyte * 64)()
    sodium.crypto_sign_keypair((ctypes.c_ubyte * 32)(), stranger)
    a, b = socket.socket(), socket.socket()
    for s in (a, b):
        t = make("3:1")
        lib.l45_tag_add(s.fileno(), ctypes.byref(t))
    now = int(time.time())
    res = {
        "good": sign_lib(a, k3, "3:1"),
        "other_app_key": sign_lib(b, k4, "3:1"),
        "unknown_key": sign_lib(b, stranger, "3:1"),
        "replay_other_socket": sign_raw(a, b, k3, now, "3:1"),
        "expired": sign_raw(b, b, k3, now - 3600, "3:1"),
        "not_on_socket": sign_lib(b, k3, "3:2"),
        "raw_good": sign_raw(a, a, k3, now, "3:1"),
    }
    res["a"] = tags_of(a)
    res["b"] = tags_of(b)
    # The daemon marks a tag signed 50 times while another process (sharing the socket, so not
    # slowed by this one's interpreter lock) adds and removes another tag as fast as it can: a
    # removal that fails (ENOENT) means the daemon lost the add before it.
    c = socket.socket()
    t1, t2 = make("3:1"), make("3:2")
    lib.l45_tag_add(c.fileno(), ctypes.byref(t1))
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(go_w)
        os.close(ready_r)
        os.set_blocking(go_r, False)
        n = lost = 0
        for _ in range(2000000):
            try:
                if os.read(go_r, 1) == b"":
                    break  # the parent closed it: done
            except BlockingIOError:
                pass
            lib.l45_tag_add(c.fileno(), ctypes.byref(t2))
            if lib.l45_tag_remove(c.fileno(), ctypes.byref(t2)) != 0:
                lost += 1
            n += 1
            if n == 1:
                os.write(ready_w, b"r")  # toggling: the parent may start signing
        os.write(out_w, json.dumps({"toggles": n, "lost": lost}).encode())
        os._exit(0)
    os.close(go_r)
    os.close(out_w)
    os.close(ready_w)
    # On a loaded machine the child may not have run yet: the signings wait (at most 10 s) for
    # its first toggle, or the race would be run against nothing.
    select.select([ready_r], [], [], 10)
    os.close(ready_r)
    signs = [sign_lib(c, k3, "3:1") for _ in range(50)]
    os.close(go_w)
    got = json.loads(os.read(out_r, 4096) or b"{}")
    os.waitpid(child, 0)
    res["race"] = {"signs_ok": signs.count(0), "toggles": got.get("toggles"),
                   "lost": got.get("lost"), "tags": tags_of(c)}
    c.close()
    for s, n in ((a, 10000), (b, 5000)):
        s.settimeout(10)
        s.connect((host, int(port)))
        s.sendall(b"x" * n)
        s.shutdown(socket.SHUT_WR)
        s.recv(16)
        s.close()
    print(json.dumps(res))
elif mode == "forge_signed":
    s = socket.socket()
    t = make("3:1")
    lib.l45_tag_add(s.fileno(), ctypes.byref(t))
    L45_SO_TAG_SIGNED = 16  # include/l45/tag/bpf_abi.h: the daemon's option, root only
    print(json.dumps({"errno": try_opt(s, L45_SO_TAG_SIGNED, bytes(t)), "tags": tags_of(s)}))
elif mode == "plan":
    import struct
    map_fd, host, port, count = int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    for spec in sys.argv[7:]:
        t = make(spec)
        lib.l45_tag_add(s.fileno(), ctypes.byref(t))
    for _ in range(count):
        s.sendto(b"p" * 100, (host, port))
    # BPF_MAP_LOOKUP_ELEM on the socket-storage map, keyed by the socket's descriptor. The
    # egress plan (struct l45_sk_cache) is 56 bytes into struct l45_sk_tags (bpf_abi.h; a
    # _Static_assert in tag.bpf.c holds it there), its `matched` 32 bytes into the plan.
    libc = ctypes.CDLL(None, use_errno=True)
    key = ctypes.c_int(s.fileno())
    val = ctypes.create_string_buffer(1024)
    attr = ctypes.create_string_buffer(
        struct.pack("=IIQQQ", map_fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0), 128)
    if libc.syscall(321, 1, attr, 128) != 0:  # bpf(BPF_MAP_LOOKUP_ELEM)
        print(json.dumps({"errno": ctypes.get_errno()}))
        sys.exit(0)
    seq, _, gen, family, proto = struct.unpack_from("=IIQBB", val.raw, 56)
    matched = struct.unpack_from("=I", val.raw, 56 + 32)[0]
    print(json.dumps({"seq": seq, "gen": gen, "family": family, "proto": proto,
                      "matched": matched}))
elif mode == "inherit":
    ls = socket.socket()
    t = make(sys.argv[3])
    lib.l45_tag_add(ls.fileno(), ctypes.byref(t))
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.create_connection(ls.getsockname(), timeout=5)
    a, _ = ls.accept()
    print(json.dumps({"accepted": tags_of(a), "client": tags_of(c), "listener": tags_of(ls)}))
elif mode == "udp":
    host = sys.argv[3]
    ports = [int(p) for p in sys.argv[4].split(",")]
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    for spec in sys.argv[6:]:
        t = make(spec)
        lib.l45_tag_add(s.fileno(), ctypes.byref(t))
    for i in range(int(sys.argv[5])):
        s.sendto(b"u" * 1000, (host, ports[i % len(ports)]))
    print(json.dumps({"tags": tags_of(s)}))
elif mode == "many":
    host, port, n, app = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    socks = []
    for i in range(1, n + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("0.0.0.0", socks[0].getsockname()[1] if socks else 0))
        t = make(f"{app}:{i}")
        if lib.l45_tag_add(s.fileno(), ctypes.byref(t)) != 0:
            raise SystemExit(f"tagging socket {i}: {os.strerror(ctypes.get_errno())}")
        socks.append(s)
    sent = 0
    for r in range(n):
        for i, s in enumerate(socks, 1):
            if r < i:
                s.sendto(b"m" * 100, (host, port))
                sent += 1
    print(json.dumps({"sent": sent}))
elif mode == "client":
    host, port = sys.argv[3], int(sys.argv[4])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    for spec in sys.argv[5:]:
        t = make(spec)
        if lib.l45_tag_add(s.fileno(), ctypes.byref(t)) != 0:
            print(json.dumps({"error": os.strerror(ctypes.get_errno())}), flush=True)
            sys.exit(1)
    s.settimeout(10)
    s.connect((host, port))
    print(json.dumps({"connected": True, "tags": tags_of(s)}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "send":
            s.sendall(b"x" * int(cmd[1]))
            print(json.dumps({"sent": int(cmd[1])}), flush=True)
        elif cmd[0] == "add":
            t = make(cmd[1])
            rc = lib.l45_tag_add(s.fileno(), ctypes.byref(t))
            print(json.dumps({"added": rc == 0, "tags": tags_of(s)}), flush=True)
        elif cmd[0] == "remove":
            t = make(cmd[1])
            rc = lib.l45_tag_remove(s.fileno(), ctypes.byref(t))
            print(json.dumps({"removed": rc == 0, "tags": tags_of(s)}), flush=True)
        elif cmd[0] == "list":
            print(json.dumps({"tags": tags_of(s)}), flush=True)
        elif cmd[0] == "close":
            s.shutdown(socket.SHUT_WR)
            s.recv(16)
            s.close()
            print(json.dumps({"closed": True}), flush=True)
            break
