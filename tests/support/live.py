"""What the live tests share: processes started in a session of their own, remembered in
`procs`, stopped by their pid (never by name) and reaped.

    sys.path.insert(0, os.path.join(SRC, "tests", "support"))
    from live import procs, start, stop
"""
import os
import signal
import subprocess
import time

procs = []  # every process start() made, for the test's final cleanup


def start(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGKILL, timeout=5):
    """Signals `p` by its pid (its session: p.pid is its process group) and reaps it."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        return p.communicate(timeout=5)


results = []  # check() outcomes, for the test's summary and exit status


def sh(*cmd, check=True, timeout=30):
    """Runs a command, its output captured as text; raises on failure unless check=False."""
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


def check(name, cond, detail=""):
    """One line per check: "ok   name" or "FAIL name: detail"."""
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)


def netns(name, namespaces):
    """A network namespace with its loopback up, remembered in `namespaces` for cleanup."""
    sh("ip", "netns", "add", name)
    namespaces.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def wait_listen(ns, port, timeout=5):
    """True once something listens on TCP `port` in `ns` (polled, bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "LISTEN" in sh("ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}").stdout:
            return True
        time.sleep(0.05)
    return False


def nginx_conf(path, root, http, suffix=""):
    """Writes to `path` a configuration for one nginx process in the foreground: its pid file
    (nginx{suffix}.pid), error log (error{suffix}.log) and temporary files under `root`; `http`
    is the body of its http block, settings and servers."""
    with open(path, "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx{suffix}.pid;
error_log {root}/error{suffix}.log;
events {{ worker_connections 64; }}
http {{
  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fcgi;
  uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
{http}
}}
""")
