"""The soak test's load and chaos (run by bench/soak.sh, which starts PostgreSQL and the servers).

50 clients mix search, query, publish and runs against two `mesh serve` on one PostgreSQL,
round-robin (a client-side load balancer), for DURATION seconds, while PostgreSQL is restarted
twice and one server is killed (SIGKILL) and started again. Every accepted publish (a 2xx) is
read back at the end: a missing one is a lost write. A 5xx outside the restart windows is a
failure. Prints throughput and p50/p99 per operation, the 5xx and the peak RSS of the servers.
Loopback only; standard library only.
"""

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

CFG = json.loads(sys.argv[1])
SERVERS = CFG["servers"]  # [{"url": "127.0.0.1:PORT", "start": [...argv], "pidfile": path}]
TOKEN = CFG["token"]
DURATION = float(CFG["duration"])
CLIENTS = int(CFG.get("clients", 50))
MESH = CFG["mesh"]
WORKSPACE = CFG["workspace"]
PG_RESTART = CFG["pg_restart"]  # argv

lock = threading.Lock()
stats = {}  # op -> {"lat": [], "ok": 0, "4xx": 0, "5xx": [], "conn": []}
accepted = []  # (product, version) of publishes answered 2xx
windows = []  # [start, end] of chaos, widened after
stop = threading.Event()
run_errors = []  # why refused runs were refused (a sample)
started = time.time()


def record(op, status, seconds, at):
    with lock:
        s = stats.setdefault(op, {"lat": [], "ok": 0, "4xx": 0, "5xx": [], "conn": []})
        if status is None:
            s["conn"].append(at)
        elif status >= 500:
            # When it started and when it ended: a run in flight when PostgreSQL restarts
            # started before the window.
            s["5xx"].append(((at, at + seconds), status))
        elif status >= 400:
            s["4xx"] += 1
        else:
            s["ok"] += 1
            s["lat"].append(seconds)


def request(server, method, path, body=None):
    conn = http.client.HTTPConnection(server, timeout=60)
    headers = {"authorization": "Bearer " + TOKEN}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        return r.status, payload
    finally:
        conn.close()


def bundle(product, version):
    domain, name = product.split(".")
    descriptor = f"""apiVersion: v1.0.0
kind: DataProduct
id: {product}
name: {name}
domain: {domain}
status: active
version: {version}
description:
  purpose: A soak-test product.
customProperties:
  - property: productType
    value: source
  - property: dataClassification
    value: internal
  - property: retentionDays
    value: 30
team:
  name: {domain}-team
  members:
    - username: owner@example.com
      role: owner
support:
  - channel: "#{domain}"
    url: https://chat.example.com/{domain}
outputPorts:
  - name: {name}
    description: The table.
    type: tables
    version: {version}
    contractId: {product}.{name}
"""
    contract = f"""apiVersion: v3.1.0
kind: DataContract
id: {product}.{name}
name: {name}
version: {version}
status: active
domain: {domain}
description:
  purpose: The table.
schema:
  - name: {name}
    physicalType: table
    properties:
      - name: id
        logicalType: string
        required: true
        primaryKey: true
        quality:
          - metric: duplicateValues
            mustBe: 0
      - name: note
        logicalType: string
        required: false
slaProperties:
  - property: latency
    value: 1
    unit: d
  - property: availability
    value: 99.5
    unit: percent
"""
    return {
        "descriptor": {"path": "product.odps.yaml", "content": descriptor},
        "contracts": [{"path": "contracts/port.odcs.yaml", "content": contract}],
    }


WORDS = ["orders", "customer", "revenue", "soak", "table", "ecommerce", "amount", "ordrs", "regon"]


def client(n):
    rng = random.Random(n)
    turn = n
    patch = 0
    while not stop.is_set():
        server = SERVERS[turn % len(SERVERS)]["url"]
        turn += 1
        roll = rng.random()
        at = time.time()
        op = "run" if n < RUNNERS else "?"
        try:
            if n < RUNNERS:
                op = "run"
                status = run(n, server)
            elif roll < 0.45:
                op = "search"
                q = " ".join(rng.sample(WORDS, 2))
                status, _ = request(server, "GET", "/api/v1/search?q=" + q.replace(" ", "+"))
            elif roll < 0.85:
                op = "query"
                sql = rng.choice([
                    "SELECT COUNT(*) AS n FROM ecommerce.orders",
                    "SELECT label, SUM(amount) AS total FROM ecommerce.orders GROUP BY label",
                    "SELECT * FROM ecommerce.orders ORDER BY amount DESC LIMIT 5",
                ])
                status, _ = request(server, "POST", "/api/v1/query", {"sql": sql})
            else:
                op = "publish"
                patch += 1
                product = f"soak.p{n}"
                version = f"1.0.{patch}"
                status, _ = request(server, "POST", "/api/v1/products", bundle(product, version))
                if 200 <= status < 300:
                    with lock:
                        accepted.append((product, version))
            record(op, status, time.time() - at, at)
        except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
            record(op, None, time.time() - at, at)


RUNNERS = 2


def run(n, server):
    """`mesh run` of the runner's own product through `server`: its status as HTTP would say."""
    out = subprocess.run(
        [MESH, "run", f"ecommerce/soak_run_{n}", "--server", "http://" + server,
         "--token", TOKEN, "--output", "json"],
        cwd=WORKSPACE, capture_output=True, text=True, timeout=300)
    if out.returncode == 0:
        return 200
    last = out.stderr.strip().splitlines()[-1][:200] if out.stderr.strip() else "?"
    with lock:
        if len(run_errors) < 200:
            run_errors.append(last)
    if "cannot reach" in last:
        raise OSError(last)
    for code in ("(409)", "(503)", "(500)"):
        if code in last:
            return int(code[1:4])
    return 422


def pid_of(server):
    try:
        return int(open(server["pidfile"]).read().strip())
    except (OSError, ValueError):
        return None


peak_rss = {}


def sample_rss():
    while not stop.is_set():
        for s in SERVERS:
            pid = pid_of(s)
            if pid is None:
                continue
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        kb = int(line.split()[1])
                        peak_rss[s["url"]] = max(peak_rss.get(s["url"], 0), kb)
            except OSError:
                pass
        time.sleep(1)


def healthy(server):
    try:
        status, _ = request(server["url"], "GET", "/health")
        return status == 200
    except (OSError, http.client.HTTPException):
        return False


def wait_healthy(deadline=120):
    end = time.time() + deadline
    while time.time() < end:
        if all(healthy(s) for s in SERVERS):
            return True
        time.sleep(0.2)
    return False


def chaos():
    plan = [(0.25, "restart PostgreSQL"), (0.5, "kill and restart server 1"), (0.75, "restart PostgreSQL")]
    for fraction, what in plan:
        while time.time() < started + DURATION * fraction:
            if stop.is_set():
                return
            time.sleep(0.2)
        begin = time.time()
        print(f"[{begin - started:6.1f} s] {what}", flush=True)
        if what.startswith("restart PostgreSQL"):
            subprocess.run(PG_RESTART, check=True, capture_output=True)
        else:
            s = SERVERS[0]
            pid = pid_of(s)
            if pid:
                os.kill(pid, 9)
            time.sleep(1)
            subprocess.Popen(s["start"], cwd=WORKSPACE)
        ok = wait_healthy()
        end = time.time()
        print(f"[{end - started:6.1f} s] recovered={ok} after {end - begin:.1f} s", flush=True)
        windows.append((begin - 1, end + 5))


def in_window(span):
    start, end = span
    return any(start <= b and end >= a for a, b in windows)


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main():
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    rss = threading.Thread(target=sample_rss, daemon=True)
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    for t in threads + [rss, chaos_thread]:
        t.start()
    time.sleep(DURATION)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    chaos_thread.join(timeout=60)
    wait_healthy()
    # Every accepted write, read back through the other server.
    lost = []
    for product, version in accepted:
        status, _ = request(SERVERS[-1]["url"], "GET", f"/api/v1/products/{product}/versions/{version}")
        if status != 200:
            lost.append((product, version, status))
    elapsed = DURATION
    print()
    print(f"{CLIENTS} clients, {DURATION:.0f} s, {len(SERVERS)} servers on one PostgreSQL; chaos windows: "
          + ", ".join(f"{a - started:.0f}-{b - started:.0f} s" for a, b in windows))
    print()
    print("| operation | ok | ok/s | p50 ms | p99 ms | 4xx | 5xx in windows | 5xx outside | refused connections |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    outside_total = 0
    for op in ["search", "query", "publish", "run"]:
        s = stats.get(op)
        if not s:
            continue
        inside = sum(1 for at, _ in s["5xx"] if in_window(at))
        outside = len(s["5xx"]) - inside
        outside_total += outside
        print(f"| {op} | {s['ok']} | {s['ok'] / elapsed:.1f} | {pct(s['lat'], 50) * 1000:.0f} | "
              f"{pct(s['lat'], 99) * 1000:.0f} | {s['4xx']} | {inside} | {outside} | {len(s['conn'])} |")
    print()
    reasons = {}
    for e in run_errors:
        reasons[e] = reasons.get(e, 0) + 1
    for e, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
        print(f"refused runs ({n}): {e}")
    print(f"accepted writes: {len(accepted)}, lost: {len(lost)} {lost[:5]}")
    for op, st in stats.items():
        codes = {}
        for _, status in st["5xx"]:
            codes[status] = codes.get(status, 0) + 1
        if codes:
            print(f"{op} 5xx by status: {codes}")
    print(f"5xx outside the restart windows: {outside_total}")
    for op, s in stats.items():
        for at, status in s["5xx"]:
            if not in_window(at):
                print(f"  {op} {status} from {at[0] - started:.1f} s to {at[1] - started:.1f} s")
    for url, kb in peak_rss.items():
        print(f"peak RSS of the server at {url}: {kb / 1024:.0f} MiB")
    sys.exit(1 if lost or outside_total else 0)


if __name__ == "__main__":
    main()
