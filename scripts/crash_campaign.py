#!/usr/bin/env python3
"""R1, crash consistency (issue 12): start the real binary, run a mixed write load, kill -9 it at
a random moment, restart, and check that

- every write acknowledged before the kill is present (a tenant's state is its last
  acknowledged one, or the one a transition in flight at the kill moved it to);
- every chain verifies from seq 1 (`tenantry audit verify`, offline);
- the store opens (the restarted server answers /readyz).

Usage: scripts/crash_campaign.py [--runs 100] [--binary target/release/tenantry] [--seed N]
Prints one line per run and a summary; exits 1 on the first loss or bad chain.
Only the Python standard library is used.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOKEN = "crash-campaign-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def start(binary, data, port, log):
    env = dict(os.environ, TENANTRY_ADMIN_OPS_TOKEN=TOKEN)
    p = subprocess.Popen(
        [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if call(base, "GET", "/readyz", timeout=1)[0] == 200:
                return p, base
        except OSError:
            pass
        if p.poll() is not None:
            raise RuntimeError(f"the server exited with {p.returncode}")
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("the server never became ready")


# Per tenant: the next transition tried, and the state it leads to.
NEXT = {
    "provisioned": ("activate", {}, "active"),
    "active": ("suspend", {"reason": "crash campaign"}, "suspended"),
    "suspended": ("reinstate", {}, "active"),
}


class Load:
    """Writers that remember what the server acknowledged."""

    def __init__(self, base, app_id, rng):
        self.base = base
        self.app_id = app_id
        self.rng = rng
        self.lock = threading.Lock()
        self.acked = {}  # tenant id -> last acknowledged state
        self.inflight = {}  # tenant id -> state an unanswered transition leads to
        self.checkpoints = 0
        self.stop = False

    def writer(self, seed):
        rng = random.Random(seed)
        while not self.stop:
            try:
                with self.lock:
                    ids = list(self.acked)
                r = rng.random()
                if r < 0.3 or not ids:
                    s, v = call(self.base, "POST", "/api/tenants", {
                        "app_id": self.app_id,
                        "display_name": f"Crash {rng.randrange(10**9)}",
                        "region": "us-east-1",
                    })
                    if s == 201:
                        with self.lock:
                            self.acked[v["id"]] = v["state"]
                elif r < 0.95:
                    tid = rng.choice(ids)
                    with self.lock:
                        if tid in self.inflight:
                            continue
                        state = self.acked[tid]
                        action, body, to = NEXT[state]
                        self.inflight[tid] = to
                    s, v = call(self.base, "POST", f"/api/tenant-lifecycle/{tid}/{action}", body)
                    with self.lock:
                        if s == 200:
                            self.acked[tid] = to
                        del self.inflight[tid]
                else:
                    chain = "platform" if rng.random() < 0.5 or not ids else f"tenant:{rng.choice(ids)}"
                    s, _ = call(self.base, "POST", "/api/audit/checkpoints", {"chain": chain})
                    if s in (200, 201):
                        with self.lock:
                            self.checkpoints += 1
            except OSError:
                # The server is gone: what is in flight stays in `inflight`.
                return


def one_run(binary, run, rng, writers):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        log = open(os.path.join(tmp, "server.log"), "w")
        port = free_port()
        p, base = start(binary, data, port, log)
        s, app = call(base, "POST", "/api/apps", {"name": "Crash Campaign"})
        assert s == 201, app
        load = Load(base, app["id"], rng)
        threads = [
            threading.Thread(target=load.writer, args=(rng.randrange(2**32),), daemon=True)
            for _ in range(writers)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 2.5))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        load.stop = True
        for t in threads:
            t.join(timeout=15)
        with load.lock:
            acked = dict(load.acked)
            inflight = dict(load.inflight)
        # Restart: the store opens.
        p, base = start(binary, data, port, log)
        lost = []
        for tid, state in acked.items():
            s, v = call(base, "GET", f"/api/tenants/{tid}")
            allowed = {state, inflight.get(tid)}
            if s != 200 or v.get("state") not in allowed:
                lost.append((tid, state, s, v.get("state") if isinstance(v, dict) else v))
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        # Every chain verifies from seq 1, offline.
        verify = subprocess.run(
            [binary, "audit", "verify", "--data-dir", data],
            capture_output=True,
            text=True,
            env=dict(os.environ, TENANTRY_ADMIN_OPS_TOKEN=TOKEN),
        )
        log.close()
        # How many redo-log records the restart replayed (batches answered after the last
        # checkpoint before the kill): the runs that exercise the replay.
        with open(os.path.join(tmp, "server.log"), errors="replace") as f:
            found = re.findall(r"replayed the redo log.*?records=(\d+)", f.read())
        replayed = sum(int(n) for n in found)
        ok = not lost and verify.returncode == 0
        print(
            f"run {run}: {len(acked)} tenants acknowledged, {len(inflight)} in flight at the kill, "
            f"{load.checkpoints} checkpoints, {replayed} redo-log records replayed; "
            f"lost {len(lost)}; verify rc={verify.returncode}",
            flush=True,
        )
        if not ok:
            for item in lost[:10]:
                print("  lost:", item)
            print(verify.stdout[-2000:], verify.stderr[-2000:])
        return len(acked), len(lost), verify.returncode, replayed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--binary", default="target/release/tenantry")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(2**32)
    print(f"seed {seed}", flush=True)
    rng = random.Random(seed)
    total_acked = total_lost = bad = with_replay = 0
    for run in range(1, a.runs + 1):
        acked, lost, rc, replayed = one_run(a.binary, run, rng, a.writers)
        with_replay += replayed > 0
        total_acked += acked
        total_lost += lost
        bad += rc != 0
        if lost or rc != 0:
            break
    print(
        f"crash campaign: {run} kill -9 runs, {total_acked} acknowledged tenants, "
        f"{total_lost} lost, {bad} runs with a chain that did not verify, "
        f"{with_replay} runs whose restart replayed the redo log"
    )
    sys.exit(1 if total_lost or bad else 0)


if __name__ == "__main__":
    main()
