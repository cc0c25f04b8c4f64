#!/usr/bin/python3
"""`l45 run` and `l45 shim` as a user sees them, without root or a network: exit codes and their
one-line messages, what `l45 run` sets for the program, `l45 shim check` on good, bad and
insecure directories, `l45 shim stats` on an empty and a malformed run directory.

Usage: shim_cli_test.py L45_BINARY
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

L45 = sys.argv[1]
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def run(*args, env=None):
    return subprocess.run([L45, *args], capture_output=True, text=True, timeout=30, env=env)


tmp = tempfile.mkdtemp(prefix="l45-shim-cli-")
try:
    os.chmod(tmp, 0o755)
    p = run("run")
    check("l45 run without a command: exit 2, one line", p.returncode == 2 and "l45: error:" in p.stderr,
          p.stderr)
    p = run("run", "--", "/nonexistent/program")
    check("l45 run of a missing program: exit 127 and its name",
          p.returncode == 127 and p.stderr.strip().endswith("cannot run /nonexistent/program: No such file or directory"),
          f"{p.returncode} {p.stderr!r}")
    p = run("run", "--modules", f"{tmp}/missing", "--", "true")
    check("l45 run --modules on a missing directory: exit 2 and why",
          p.returncode == 2 and "No such file or directory" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr)

    mods = f"{tmp}/mods"
    os.makedirs(mods)
    os.chmod(mods, 0o755)
    with open(f"{mods}/a.toml", "w") as f:
        f.write('name = "watch"\nmodule = "monitor"\norder = 3\n[match]\nprogram = "socat"\nports = [80, 443]\n')
    with open(f"{mods}/b.toml", "w") as f:
        f.write('name = "bad"\nmodule = "monitor"\n[match]\nside = "sideways"\n')
    p = run("run", "--modules", mods, "--rundir", f"{tmp}/run", "--debug", "--", "sh", "-c",
            'echo "$LD_PRELOAD|$L45_SHIM_MODULES|$L45_SHIM_RUNDIR|$L45_SHIM_DEBUG"; exit 3')
    fields = p.stdout.strip().split("|")
    check("l45 run: the program's own exit code, LD_PRELOAD and the shim's variables set",
          p.returncode == 3 and len(fields) == 4 and fields[0].endswith("libl45shim.so")
          and os.path.isfile(fields[0].split()[0]) and fields[1:] == [mods, f"{tmp}/run", "1"],
          f"{p.returncode} {p.stdout!r} {p.stderr!r}")

    p = run("shim", "check", "--modules", mods)
    check("l45 shim check: the good manifest with its match, the bad one with file:line, exit 1",
          p.returncode == 1 and "ok      " + f"{mods}/a.toml: watch (module monitor, order 3) program=socat ports=80,443" in p.stdout
          and f"skipped {mods}/b.toml:4: match.side" in p.stdout, p.stdout)
    os.remove(f"{mods}/b.toml")
    p = run("shim", "check", "--modules", mods)
    check("l45 shim check on a clean directory: exit 0", p.returncode == 0, p.stdout + p.stderr)
    os.chmod(mods, 0o775)
    p = run("shim", "check", "--modules", mods)
    check("l45 shim check on a group-writable directory: refused, exit 1",
          p.returncode == 1 and "group-writable (mode 0775)" in p.stdout, p.stdout)
    os.chmod(mods, 0o755)

    empty = f"{tmp}/empty"
    os.makedirs(empty)
    p = run("shim", "stats", "--rundir", empty)
    check("l45 shim stats with nothing running: one line, exit 0",
          p.returncode == 0 and p.stdout.startswith("no shimmed process alive in"), p.stdout)
    with open(f"{empty}/123.stats", "wb") as f:
        f.write(b"garbage" * 10)
    p = run("shim", "stats", "--rundir", empty, "--json")
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        doc = None
    check("l45 shim stats: a malformed file is a warning naming it, the JSON is still valid",
          p.returncode == 0 and doc is not None and doc["processes"] == [] and "123.stats" in p.stderr,
          f"{p.stdout!r} {p.stderr!r}")
    p = run("help")
    check("l45 help lists run and shim", " run " in p.stdout and " shim " in p.stdout, p.stdout)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
