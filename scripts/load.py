#!/usr/bin/env python3
"""End-to-end load benchmark on loopback, bounded in time.

Runs the axum and actix-web hello-world servers of examples/load_server.rs
with no auth, with keycard (HS256, RS256, ES256; cache off and on), and with
the peer-style baseline (a jsonwebtoken::decode layer for axum,
actix-web-httpauth + jsonwebtoken for actix-web), alternating configurations
within each round (in reverse order every other round). Prints requests/s, p99 latency, server CPU µs per request
and peak RSS, each as a ratio to the same framework's no-auth server of the
same round (medians over rounds).

    python3 scripts/load.py [--rounds 2] [--seconds 4] [--connections 64] [--peers]

--peers also builds and runs jwt-authorizer 0.15 (which needs axum 0.7) from
benches/peers/jwt-authorizer, against its own axum 0.7 no-auth baseline.
Needs wrk (Debian package `wrk`). Traffic goes to 127.0.0.1 only.
"""
import argparse, os, random, re, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [
    ("axum", "none", "HS256"), ("axum", "plumbing", "HS256"), ("axum", "floor", "HS256"),
    ("axum", "keycard", "HS256"), ("axum", "keycard-typed", "HS256"), ("axum", "jsonwebtoken", "HS256"),
    ("axum", "keycard", "RS256"), ("axum", "keycard-cached", "RS256"), ("axum", "jsonwebtoken", "RS256"),
    ("axum", "keycard", "ES256"), ("axum", "keycard-cached", "ES256"), ("axum", "jsonwebtoken", "ES256"),
    ("actix", "none", "HS256"),
    ("actix", "keycard", "HS256"), ("actix", "keycard-typed", "HS256"), ("actix", "jsonwebtoken", "HS256"),
    ("actix", "keycard", "RS256"), ("actix", "keycard-cached", "RS256"), ("actix", "jsonwebtoken", "RS256"),
    ("actix", "keycard", "ES256"), ("actix", "keycard-cached", "ES256"), ("actix", "jsonwebtoken", "ES256"),
]
PEER_CONFIGS = [
    ("axum07", "none", "HS256"),
    ("axum07", "jwt-authorizer", "HS256"), ("axum07", "jwt-authorizer", "RS256"), ("axum07", "jwt-authorizer", "ES256"),
]
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run(binaries, framework, mode, alg, seconds, connections):
    port = free_port()
    env = dict(os.environ, LOAD_ALG=alg)
    if framework == "axum07":
        cmd = [binaries["peer"], mode, str(port)]
    else:
        cmd = [binaries["ours"], framework, mode, str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    try:
        token = server.stdout.readline().split()[1]
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
            except OSError:
                if time.time() > deadline: raise RuntimeError("server did not start")
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        header = ["-H", f"authorization: Bearer {token}"]
        subprocess.run(["wrk", "-t1", "-c16", "-d1s", *header, url], capture_output=True, timeout=30)  # warm up
        before = cpu_ticks(server.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *header, url],
                             capture_output=True, text=True, timeout=seconds + 30).stdout
        cpu = (cpu_ticks(server.pid) - before) / TICK
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx: raise RuntimeError(f"{framework} {mode} {alg}: {non2xx.group(1)} failed responses")
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        p99_us = float(p99.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[p99.group(2)]
        return {"rps": rps, "p99": p99_us, "cpu_us": cpu * 1e6 / max(total, 1), "rss": peak_rss_kib(server.pid)}
    finally:
        server.kill(); server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--only", help="comma-separated modes to run (e.g. none,floor,keycard,jsonwebtoken)")
    ap.add_argument("--algs", default="HS256,RS256,ES256", help="comma-separated algorithms")
    ap.add_argument("--frameworks", default="axum,actix,axum07", help="comma-separated frameworks (axum07: the peers)")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--features", "actix,cache", "--example", "load_server"], cwd=ROOT, check=True)
    binaries = {"ours": os.path.join(ROOT, "target", "release", "examples", "load_server")}
    configs = list(CONFIGS)
    if a.only:
        keep = set(a.only.split(","))
        configs = [c for c in configs if c[1] in keep or c[1] == "none"]
    keep_algs = set(a.algs.split(","))
    configs = [c for c in configs if c[1] in ("none", "plumbing", "floor") or c[2] in keep_algs]
    if a.peers:
        peer_dir = os.path.join(ROOT, "benches", "peers", "jwt-authorizer")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=peer_dir, check=True)
        binaries["peer"] = os.path.join(peer_dir, "target", "release", "peer-jwt-authorizer")
        configs += [c for c in PEER_CONFIGS if c[1] == "none" or c[2] in keep_algs]
    keep_fw = set(a.frameworks.split(","))
    configs = [c for c in configs if c[0] in keep_fw]
    results = {c: [] for c in configs}
    for r in range(a.rounds):
        # Every other round runs the configurations in reverse order, so a
        # machine that speeds up or slows down within a round favours none.
        order = configs if r % 2 == 0 else configs[::-1]
        measured = {}
        for cfg in order:
            measured[cfg] = run(binaries, *cfg, a.seconds, a.connections)
            print(f"round {r + 1}: {' '.join(cfg):28} {measured[cfg]['rps']:>9.0f} req/s", file=sys.stderr)
        for cfg in configs:
            results[cfg].append((measured[cfg], measured[(cfg[0], "none", "HS256")]))
    print(f"\n{a.rounds} rounds x {a.seconds}s, wrk -t1 -c{a.connections}, server and client sharing {os.cpu_count()} cores")
    print(f"| framework | auth | alg | req/s | ratio | p99 µs | ratio | CPU µs/req | ratio | peak RSS MiB | Δ vs no-auth |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cfg, runs in results.items():
        med = lambda k: statistics.median(m[k] for m, _ in runs)
        rat = lambda k: statistics.median(m[k] / b[k] for m, b in runs)
        rss_delta = statistics.median((m["rss"] - b["rss"]) / 1024 for m, b in runs)
        alg = "-" if cfg[1] in ("none", "plumbing") else cfg[2]
        print(f"| {cfg[0]} | {cfg[1]} | {alg} | {med('rps'):.0f} | {rat('rps'):.2f} | {med('p99'):.0f} | {rat('p99'):.2f} "
              f"| {med('cpu_us'):.1f} | {rat('cpu_us'):.2f} | {med('rss') / 1024:.1f} | {rss_delta:+.1f} |")


    # keycard against the floor and the peers, same round, HS256.
    def ratios_to(mode, fw="axum", alg="HS256", other_fw=None, ours="keycard"):
        k, o = results.get((fw, ours, alg)), results.get((other_fw or fw, mode, alg))
        if not k or not o: return None
        # Each against its own framework's no-auth server of the same round.
        return [(km["rps"] / kb["rps"]) / (om["rps"] / ob["rps"]) for (km, kb), (om, ob) in zip(k, o)]

    def interval(xs, resamples=2000):
        # 90% bootstrap interval of the median over rounds (fixed seed: the
        # same rounds always give the same interval).
        rng = random.Random(12)
        meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
        return meds[int(0.05 * resamples)], meds[int(0.95 * resamples) - 1]

    for ours in ("keycard", "keycard-typed"):
        for label, rs in [("floor", ratios_to("floor", ours=ours)),
                          ("jsonwebtoken layer", ratios_to("jsonwebtoken", ours=ours)),
                          ("jwt-authorizer", ratios_to("jwt-authorizer", other_fw="axum07", ours=ours)),
                          ("actix-web-httpauth (actix-web)", ratios_to("jsonwebtoken", fw="actix", ours=ours))]:
            if rs:
                lo, hi = interval(rs)
                fw = "actix-web " if label.endswith("(actix-web)") else ""
                print(f"{fw}{ours} HS256 req/s ÷ {label}: {statistics.median(rs):.2f} "
                      f"(median over {len(rs)} rounds, 90% bootstrap interval {lo:.2f}–{hi:.2f}; "
                      f"each relative to its no-auth server)")


if __name__ == "__main__":
    main()
