"""What the live tests share: processes started in a session of their own, remembered in
`procs`, stopped by their pid (never by name) and reaped.

    sys.path.insert(0, os.path.join(SRC, "tests", "support"))
    from live import procs, start, stop
"""
import os
import signal
import subprocess

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
