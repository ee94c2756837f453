"""Drives bench/decisions/run.sh: starts OPA and the collector, alternates wrk runs against both,
then runs agentload's open-loop stream on each ledger backend, and prints one summary.

Only the standard library. Durations and rounds come from the environment (BENCH_SECONDS,
BENCH_ROUNDS, BENCH_OPEN_SECONDS, BENCH_AGENTS, BENCH_CONNECTIONS); see run.sh.
"""

import argparse
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    return int(os.environ.get(name, default))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}; see its log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port} within {timeout}s")


def cpu_seconds(pid):
    """User plus system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Server:
    def __init__(self, name, argv, port, log, env=None):
        self.name, self.port = name, port
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(port, self.proc, name)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_collector(args, work, name, backend="embedded", redis="127.0.0.1:1", replicas=0, durability="power"):
    d = os.path.join(work, name)
    os.makedirs(d)
    api, otlp = free_port(), free_port()
    env = dict(os.environ, BENCH_BACKEND=backend, BENCH_DIR=d, BENCH_REDIS=redis, BENCH_REPLICAS=str(replicas),
               BENCH_OTLP=f"127.0.0.1:{otlp}", BENCH_API=f"127.0.0.1:{api}",
               BENCH_POLICY=os.path.join(HERE, "policy.yaml"), BENCH_METRICS=f"127.0.0.1:{free_port()}", BENCH_TELEMETRY=str(free_port()),
               BENCH_DURABILITY=durability)
    s = Server(name, [os.path.join(args.bin, "otelcol-agentcost"), "--config", os.path.join(HERE, "collector.yaml")],
               api, os.path.join(work, name + ".log"), env)
    s.url, s.path, s.otlp = f"http://127.0.0.1:{api}", "/v1/decisions", f"http://127.0.0.1:{otlp}"
    return s


def start_opa(args, work):
    port = free_port()
    s = Server("opa", [os.path.join(args.bin, "opa"), "run", "--server", "--addr", f"127.0.0.1:{port}",
                       "--log-level", "error", os.path.join(HERE, "policy.rego")], port, os.path.join(work, "opa.log"))
    s.url, s.path = f"http://127.0.0.1:{port}", "/v1/data/agentcost/decision"
    return s


EXPECT = {"approval": "require_approval", "allow": "allow"}
MODES = ("power", "process")


def wrk(server, kind, seconds, agents, conns, opa):
    """One closed-loop wrk run; counts only 2xx answers with the expected decision."""
    cpu0, gen0 = server.cpu(), children_cpu()
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", os.path.join(HERE, "decide.lua"),
                          server.url, "--", server.path, kind, EXPECT[kind], str(agents)] + (["opa"] if opa else []),
                         capture_output=True, text=True, check=True).stdout
    cpu, gen = server.cpu() - cpu0, children_cpu() - gen0
    m = re.search(r"RESULT ok=(\d+) bad=(\d+) seconds=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+)", out)
    if not m:
        sys.exit("wrk printed no RESULT line:\n" + out)
    ok, bad, secs = int(m[1]), int(m[2]), float(m[3])
    first = re.search(r"FIRST_BAD (.*)", out)
    return {"ok": ok, "bad": bad, "rate": ok / secs, "p50": float(m[4]), "p99": float(m[5]),
            "server_us": cpu / max(ok, 1) * 1e6, "gen_us": gen / max(ok, 1) * 1e6,
            "first_bad": first[1] if first else ""}


def open_loop(args, server, seconds, agents, prefix):
    cpu0, gen0 = server.cpu(), children_cpu()
    out = subprocess.run([os.path.join(args.bin, "agentload"), "-url", server.url, "-rate", "1000", "-d", f"{seconds}s",
                          "-agents", str(agents), "-agent-prefix", prefix, "-span-rate", "10000", "-otlp", server.otlp],
                         capture_output=True, text=True, check=True).stdout
    cpu, gen = server.cpu() - cpu0, children_cpu() - gen0
    m = re.search(r"(\d+) sent in .*?, (\d+) expected answers, p50 (\S+), p99 (\S+), p99.9 (\S+), max (\S+), unexpected (\d+)", out)
    spans = re.search(r"spans: (\d+) acknowledged \((\d+)/s\), (\d+) requests failed", out)
    if not m or not spans:
        sys.exit("agentload printed no result:\n" + out)
    return {"sent": int(m[1]), "ok": int(m[2]), "p50": m[3], "p99": m[4], "p999": m[5], "max": m[6], "bad": int(m[7]),
            "spans": int(spans[2]), "span_fail": int(spans[3]), "server_cores": cpu / seconds, "gen_cores": gen / seconds,
            "line": out.strip()}


def start_redis(work, name, replica_of=None):
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", work, "--dbfilename", name + ".rdb",
            "--appendonly", "yes", "--appendfilename", name + ".aof", "--appendfsync", "everysec", "--save", ""]
    if replica_of:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    return Server(name, argv, port, os.path.join(work, name + ".log"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    seconds, rounds = env_int("BENCH_SECONDS", 8), env_int("BENCH_ROUNDS", 3)
    open_seconds, agents, conns = env_int("BENCH_OPEN_SECONDS", 15), env_int("BENCH_AGENTS", 10000), env_int("BENCH_CONNECTIONS", 16)
    work = tempfile.mkdtemp(prefix="agentcost-bench-")
    servers = []
    try:
        opa = start_opa(args, work)
        servers.append(opa)
        cols = {}
        for mode in MODES:
            cols[mode] = start_collector(args, work, "embedded-" + mode, durability=mode)
            servers.append(cols[mode])
        targets = [("agentcost " + m, cols[m], False) for m in MODES] + [("opa", opa, True)]
        print(f"closed loop: wrk, 2 threads, {conns} connections, {seconds}s per run, {rounds} rounds in rotating order, "
              f"{agents} agents, 1 caller (open API on loopback); embedded ledger, durability power and process", flush=True)
        for _, s, opa_ in targets:
            for kind in EXPECT:
                wrk(s, kind, 2, agents, conns, opa_)  # warm up
        rows = {(t[0], k): [] for t in targets for k in EXPECT}
        for r in range(rounds):
            for kind in EXPECT:
                order = targets[r % len(targets):] + targets[:r % len(targets)]
                for name, s, opa_ in order:
                    res = wrk(s, kind, seconds, agents, conns, opa_)
                    rows[(name, kind)].append(res)
                    print(f"  round {r + 1} {kind:8} {name:17} {res['rate']:8.0f}/s  p50 {res['p50']:6.2f} ms  p99 {res['p99']:6.2f} ms  "
                          f"server {res['server_us']:5.0f} us/decision  wrk {res['gen_us']:4.0f} us  unexpected {res['bad']}"
                          + (f"  first: {res['first_bad'][:120]}" if res['bad'] else ""), flush=True)
        opa.stop()
        servers.remove(opa)

        print(f"open loop: agentload, 1,000 decisions/s for {open_seconds}s (mix: 60% allow with reservation, 15% read, "
              f"10% allow_with_constraints, 10% require_approval, 5% deny), {agents} agents, spans at 10,000/s over OTLP/HTTP", flush=True)
        opens = []
        # The open loop runs on fresh collectors: the closed loop leaves ~100k unreleased
        # reservations and pending approvals behind, state a steady fleet would not carry.
        for mode in MODES:
            cols[mode].stop()
            servers.remove(cols[mode])
            c = start_collector(args, work, "embedded-open-" + mode, durability=mode)
            servers.append(c)
            opens.append(("embedded, " + mode, open_loop(args, c, open_seconds, agents, "ol-agent-")))
            c.stop()
            servers.remove(c)
        if shutil.which("redis-server"):
            primary = start_redis(work, "redis-primary")
            servers.append(primary)
            replica = start_redis(work, "redis-replica", replica_of=primary.port)
            servers.append(replica)
            time.sleep(1)
            for name, n in (("redis", 0), ("redis, 1 replica ack", 1)):
                c = start_collector(args, work, name.replace(", ", "-").replace(" ", "-"), backend="redis",
                                    redis=f"127.0.0.1:{primary.port}", replicas=n)
                servers.append(c)
                opens.append((name, open_loop(args, c, open_seconds, agents, f"ol-{n}-agent-")))
                c.stop()
                servers.remove(c)
        else:
            print("  redis-server not found: no Redis rows", flush=True)
        for name, o in opens:
            print(f"  {name:21} p50 {o['p50']:>9}  p99 {o['p99']:>9}  p99.9 {o['p999']:>9}  max {o['max']:>9}  "
                  f"answered {o['ok']}/{o['sent']}  unexpected {o['bad']}  spans {o['spans']}/s ({o['span_fail']} requests failed)  "
                  f"server {o['server_cores']:.2f} cores, generator {o['gen_cores']:.2f}", flush=True)
            kinds = re.search(r"^by kind: (.*)$", o["line"], re.M)
            if kinds:
                print(f"  {'':21} {kinds[1]}", flush=True)
            first = re.search(r"\(first error: (.*?)\)$", o["line"], re.M)
            if o["bad"] and first:
                print(f"  {'':21} first unexpected: {first[1][:200]}", flush=True)

        print("\nsummary (medians of the rounds; only 2xx answers with the expected decision count)")
        print(f"  {'path':20} {'agentcost':17} {'dec/s':>7} {'OPA/s':>7} {'ratio':>6} {'p99 ms':>13} {'server us/dec':>15} {'wrk us/dec':>11}")
        med = lambda rs, k: sorted(r[k] for r in rs)[len(rs) // 2]
        for kind, label in (("approval", "require_approval"), ("allow", "allow + reservation")):
            o = rows[("opa", kind)]
            for mode in MODES:
                a = rows[("agentcost " + mode, kind)]
                ratio = sorted(x["rate"] / y["rate"] for x, y in zip(a, o))[len(a) // 2]
                print(f"  {label:20} {'durability ' + mode:17} {med(a, 'rate'):7.0f} {med(o, 'rate'):7.0f} {ratio:5.2f}x "
                      f"{med(a, 'p99'):6.1f}/{med(o, 'p99'):<6.1f} {med(a, 'server_us'):7.0f}/{med(o, 'server_us'):<7.0f} "
                      f"{med(a, 'gen_us'):5.0f}/{med(o, 'gen_us'):<5.0f}")
        print(f"  (agentcost/OPA in each pair; ratio: median of the per-round ratios; logs in {work})")
    finally:
        for s in reversed(servers):
            s.stop()


if __name__ == "__main__":
    main()
