"""Starts the real collector (otelcol-agentcost) for the client's tests.

The binary is $AGENTCOST_COLLECTOR, else it is built with ``go build`` from this repository. The
config and policy are clients/testdata/, shared with the TypeScript client's tests; ports are free
loopback ports and the ledger lives in a fresh temp dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TESTDATA = os.path.join(REPO, "clients", "testdata")

AGENT = "test-agent"
AGENT_TOKEN = "agent-token-for-the-clients-tests"
REVIEWER_TOKEN = "reviewer-token-for-the-clients-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """One running collector; stop() ends it and removes its directory."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="agentcost-clients-")
        binary = os.environ.get("AGENTCOST_COLLECTOR")
        if not binary:
            binary = os.path.join(self.dir, "otelcol-agentcost")
            subprocess.run(["go", "build", "-o", binary, "./cmd/otelcol-agentcost"], cwd=REPO, check=True)
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        subst = {"${BUDGET_ENDPOINT}": f"127.0.0.1:{port}", "${OTLP_ENDPOINT}": f"127.0.0.1:{free_port()}",
                 "${METRICS_ENDPOINT}": f"127.0.0.1:{free_port()}", "${DIR}": self.dir}
        with open(os.path.join(TESTDATA, "config.yaml"), encoding="utf-8") as f:
            config = f.read()
        for k, v in subst.items():
            config = config.replace(k, v)
        for name, text in (("config.yaml", config), ("agent.token", AGENT_TOKEN), ("reviewer.token", REVIEWER_TOKEN)):
            with open(os.path.join(self.dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        shutil.copy(os.path.join(TESTDATA, "policy.yaml"), self.dir)
        self.agent_token_file = os.path.join(self.dir, "agent.token")
        self.log_path = os.path.join(self.dir, "collector.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "--config", os.path.join(self.dir, "config.yaml")],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        req = urllib.request.Request(self.endpoint + "/v1/budgets",
                                     headers={"Authorization": "Bearer " + REVIEWER_TOKEN})
        for _ in range(600):  # bounded: 60 s
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(req, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"collector not ready within 60s:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
