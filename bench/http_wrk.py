"""Benchmark: the service's signed GETs against a bare Tornado handler writing the same dict, driven by wrk.

    .venv/bin/python bench/http_wrk.py [--seconds 5] [--rounds 3] [--connections 32] [--port 8630]
                                   [--database-url postgresql://...] [--profile FILE] [--service-root DIR]
                                   [--only "2 processes"]

wrk (a load generator in C: `apt-get install -y wrk` on Debian/Ubuntu) drives, so the client does not take
the server's Python time. Every request carries a signature of its own (wrk cycles through a list signed
just before each run), as real clients sign each call. Targets, alternating in every round: signed
`product_list` (20 of 10,000 products) as an ordinary user and as an administrator, `acount_data` and
`home_page` on the demo company's 90 days of activity, `product_list` with `server.processes: 2`, and the
bare one-process handler. Printed: the median of the rounds and its ratio to the bare handler, at the
default INFO logging (to a file), and the server's CPU time per request beside the bare handler's (on a
busy machine a steadier figure than the rate). `--database-url` runs on that PostgreSQL database (it is emptied).
`--profile FILE` records the one-process service with py-spy (`pip install py-spy`) during one more
product_list run and prints the functions most often on the CPU. `--service-root` starts server.py from
another checkout (to compare with an older version; the data is seeded by this one).
Ports: --port (one process), +1 (bare handler), +2 (two processes).
"""
import argparse
import collections
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from products import BARE_APP, seed, wait_for  # noqa: E402 (bench/products.py)

import models  # noqa: E402

TARGETS = {"product_list": ("product/product_list", {"product_type": 1}),
           "acount_data": ("home_page/acount_data", {}),
           "home_page": ("home_page", {})}
SIGNED_PATHS = 60_000  # more than wrk sends in one run

LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; n = 0 end
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"code":%s*200') then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("BAD %d\\n", total))
end
"""


def need_wrk():
    if shutil.which("wrk") is None:
        sys.exit("bench/http_wrk.py needs wrk, a load generator in C: apt-get install -y wrk (Debian/Ubuntu), "
                 "brew install wrk (macOS)")


def signed_paths(target, caller, count):
    """`count` paths of `target`, each with its own signature (timestamps a millisecond apart)."""
    path, query = TARGETS[target]
    user_id, token = caller
    first = int(time.time() * 1000) - 5000
    paths = []
    for timestamp in range(first, first + count):
        rand_str = hashlib.md5(f"{timestamp}{token}".encode()).hexdigest()
        params = {**query, "rand_str": rand_str, "timestamp": timestamp, "user_id": user_id}
        paths.append(f"/zhugeleida/admin/{path}?{urllib.parse.urlencode(params)}")
    return paths


def run_wrk(port, paths, args, folder, pid=None):
    """Requests per second, errors, the server's CPU time per request in microseconds (a figure the other
    load on the machine disturbs less than the rate) and wrk's own (on two cores, what it takes from two
    server processes)."""
    script = Path(folder) / "paths.lua"
    script.write_text("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n" + LUA)
    cpu_before = cpu_seconds(pid) if pid else 0
    wrk_before = children_cpu_seconds()
    result = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "-s", str(script),
                             f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True)
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", result.stdout).group(1))
    bad = int(re.search(r"BAD (\d+)", result.stdout).group(1))
    errors = re.search(r"Socket errors: .*", result.stdout)
    requests = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    cpu_us = 1e6 * (cpu_seconds(pid) - cpu_before) / max(requests, 1) if pid else 0
    wrk_us = 1e6 * (children_cpu_seconds() - wrk_before) / max(requests, 1)
    return rate, bad + (1 if errors else 0), cpu_us, wrk_us


def children_cpu_seconds():
    """CPU time of this process's children that have ended (wrk, once run() has waited for it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid):
    """CPU time (user + system) of a process, its threads and its child processes (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(cpu_seconds(child) for child in children)


def start_service(root, env, port, processes, log_path):
    env = {**env, "ZGLD_SERVER_PORT": str(port), "ZGLD_SERVER_PROCESSES": str(processes)}
    with open(log_path, "ab") as log:
        service = subprocess.Popen([sys.executable, str(root / "server.py")], cwd=env["BENCH_DIR"], env=env,
                                   stdout=log, stderr=log)
    wait_for(port)
    return service


def token_of(login_name):
    user = models.User.get(models.User.login_name == login_name)
    return user.id, user.token


def first_answer(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read()


def profile(pid, seconds, output):
    """py-spy record in the background; returns the process."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")  # pip install py-spy
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "1000",
                             "--format", "raw", "--output", output, "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def print_profile(output, top=15):
    """The functions most often on the CPU (leaf of each sample) and most often on the stack."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in Path(output).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \(.*?/(site-packages/|pipeline/|\w+/)?", " (", f) for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    print(f"py-spy, {total} samples; own time:")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("on the stack:")
    for frame, count in inclusive.most_common(top + 45):
        print(f"  {100 * count / total:5.1f}%  {frame}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=8630)
    parser.add_argument("--database-url", help="default: SQLite in a temp folder (a PostgreSQL one is emptied)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy raw output for the one-process product_list")
    parser.add_argument("--service-root", type=Path, default=ROOT, help="the checkout whose server.py runs")
    parser.add_argument("--only", action="append", metavar="WORDS",
                        help="only the runs whose name contains WORDS (repeatable; the bare handler always runs)")
    args = parser.parse_args()
    need_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        if args.database_url:
            models.connect(url)
            models.db.drop_tables(models.MODELS, safe=True, cascade=True)
            models.db.execute_sql("DROP TABLE IF EXISTS used_signature")
            models.db.close()
        callers = seed(url)
        env = {**os.environ, "ZGLD_DATABASE_URL": url, "ZGLD_STORAGE_ROOT": f"{tmp}/statics",
               "ZGLD_STORAGE_STAGING": f"{tmp}/staging", "ZGLD_LOGGING_LEVEL": "INFO", "BENCH_DIR": tmp}
        subprocess.run([sys.executable, str(args.service_root / "server.py"), "demo"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        models.connect(url)
        demo_admin = token_of("admin")
        models.db.close()
        log_path = Path(tmp) / "service.log"
        services = []
        try:
            one = start_service(args.service_root, env, args.port, 1, log_path)
            services.append(one)
            # a second instance on the same database: its own staging folder, which holds the instance lock
            services.append(start_service(args.service_root, {**env, "ZGLD_STORAGE_STAGING": f"{tmp}/staging-2"},
                                          args.port + 2, 2, log_path))
            body = first_answer(args.port, signed_paths("product_list", callers["user"], 1)[0])
            page = json.loads(body)
            assert page["code"] == 200 and len(page["data"]["ret_data"]) == 20, page
            Path(tmp, "body.json").write_bytes(body)
            services.append(subprocess.Popen([sys.executable, "-c", BARE_APP, str(args.port + 1),
                                              f"{tmp}/body.json"]))
            wait_for(args.port + 1)
            runs = {  # name: (port, target, caller)
                "product_list, user": (args.port, "product_list", callers["user"]),
                "product_list, admin": (args.port, "product_list", callers["admin"]),
                "acount_data": (args.port, "acount_data", demo_admin),
                "home_page": (args.port, "home_page", demo_admin),
                "product_list, 2 processes": (args.port + 2, "product_list", callers["user"]),
                "bare Tornado handler": (args.port + 1, "product_list", callers["user"]),
            }
            runs = {name: run for name, run in runs.items()
                    if not args.only or name == "bare Tornado handler" or any(w in name for w in args.only)}
            for name, (port, target, caller) in runs.items():
                answer = json.loads(first_answer(port, signed_paths(target, caller, 1)[0]))
                assert answer["code"] == 200, (name, answer)
            print(f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds}s, database "
                  f"{url.split('@')[-1] if args.database_url else 'SQLite'}, logging INFO; product_list "
                  f"{len(body)} bytes")
            pids = {args.port: services[0].pid, args.port + 1: services[2].pid, args.port + 2: services[1].pid}
            results = {name: [] for name in runs}
            cpu = {name: [] for name in runs}
            wrk_cpu = {name: [] for name in runs}
            errors = collections.Counter()
            for port, target, caller in runs.values():  # warm up
                run_wrk(port, signed_paths(target, caller, 2000), argparse.Namespace(
                    connections=args.connections, seconds=1), tmp)
            for _ in range(args.rounds):
                for name, (port, target, caller) in runs.items():
                    rate, bad, cpu_us, wrk_us = run_wrk(port, signed_paths(target, caller, SIGNED_PATHS), args,
                                                        tmp, pids[port])
                    results[name].append(rate)
                    cpu[name].append(cpu_us)
                    wrk_cpu[name].append(wrk_us)
                    errors[name] += bad
            if args.profile:  # a run of its own: the profiler takes CPU too
                port, target, caller = args.port, "product_list", callers["user"]
                spy = profile(one.pid, args.seconds, args.profile)
                run_wrk(port, signed_paths(target, caller, SIGNED_PATHS), args, tmp)
                spy.wait(60)
        finally:
            for process in services:
                process.terminate()
                process.wait(15)
    bare = statistics.median(results["bare Tornado handler"])
    bare_cpu = statistics.median(cpu["bare Tornado handler"])
    targets = {"product_list, user": 0.6, "acount_data": 0.35, "product_list, 2 processes": 1.2}
    for name, rounds in results.items():
        rate = statistics.median(rounds)
        goal = targets.get(name) if not args.database_url else None
        verdict = "" if goal is None else f"  target {goal}: {'met' if rate / bare >= goal else 'NOT MET'}"
        cpu_us = statistics.median(cpu[name])
        print(f"{name:27} {rate:7.0f} req/s  ratio {rate / bare:5.2f}  CPU {cpu_us:6.0f} us/request, ratio "
              f"{bare_cpu / cpu_us:4.2f}, wrk {statistics.median(wrk_cpu[name]):3.0f} us  (rounds: "
              + ", ".join(f"{r:.0f}" for r in rounds)
              + f"; errors {errors[name]}){verdict}")
    if args.profile:
        print_profile(args.profile)


if __name__ == "__main__":
    main()
