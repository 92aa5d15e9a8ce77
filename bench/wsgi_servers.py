"""WSGI servers compared on the same Kizuna page, in the same run.

Serves GET /accounts/sign-in/ (template rendering, sessions, CSRF, i18n: the
framework's work without database writes) from each server with 2 processes,
and loads it with wrk (Debian package) for a fixed time over loopback.
Reports requests/s, latency percentiles and server CPU seconds per 1,000 requests.

    .venv/bin/python bench/wsgi_servers.py [--seconds 10] [--connections 16]

granian is not a dependency: install it into the venv to include it in the run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from _harness import BIN, ROOT, cpu_seconds, free_port, quick, start, stop, wait_up


def servers(port: int) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    found = {
        "gunicorn gthread (2 proc x 8 threads)": [
            str(BIN / "gunicorn"),
            "kizuna.wsgi:application",
            "-b",
            bind,
            "-k",
            "gthread",
            "-w",
            "2",
            "--threads",
            "8",
        ],
        "gunicorn sync (2 proc)": [
            str(BIN / "gunicorn"),
            "kizuna.wsgi:application",
            "-b",
            bind,
            "-w",
            "2",
        ],
    }
    if (BIN / "granian").exists():
        found["granian wsgi (2 proc x 8 threads)"] = [
            str(BIN / "granian"),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--blocking-threads",
            "8",
            "kizuna.wsgi:application",
        ]
    found["django runserver (reference)"] = [
        str(BIN / "kizuna"),
        "runserver",
        "--noreload",
        "--nothreading",
        bind,
    ]
    return found


def run(
    name: str, command: list[str], env: dict[str, str], url: str, args: argparse.Namespace
) -> str:
    server = start(command, env)
    try:
        wait_up(url)
        subprocess.run(
            ["wrk", "-t2", "-c", str(args.connections), "-d", "2s", url],
            capture_output=True,
            check=True,
        )  # warm-up
        before = cpu_seconds(server.pid)
        result = subprocess.run(
            ["wrk", "-t2", "-c", str(args.connections), "-d", f"{args.seconds}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = cpu_seconds(server.pid) - before
    finally:
        stop(server, timeout=20)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result).group(1))
    total = int(re.search(r"(\d+) requests in", result).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", result, re.MULTILINE).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", result, re.MULTILINE).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result)
    return (
        f"| {name} | {rate:,.0f} | {p50} | {p99} | {1000 * cpu / max(total, 1):.2f} | "
        f"{errors.group(1) if errors else 0} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3 if quick() else 10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        # A comparison for docs/adr/0004, no figure of `make bench`: skipped, not failed.
        print("skipped: wrk is needed (apt-get install wrk)")
        return
    data = tempfile.mkdtemp(prefix="kizuna-bench-")
    env = {**os.environ, "KIZUNA_DATA_DIR": data, "DJANGO_SETTINGS_MODULE": "kizuna.settings"}
    env.pop("DATABASE_URL", None)
    subprocess.run([str(BIN / "kizuna"), "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    port = free_port()
    url = f"http://127.0.0.1:{port}/accounts/sign-in/"
    print(
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.seconds}s x "
        f"{args.connections} connections, GET /accounts/sign-in/"
    )
    print("| server | req/s | p50 | p99 | server CPU s / 1,000 req | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, command in servers(port).items():
        print(run(name, command, env, url, args), flush=True)
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
