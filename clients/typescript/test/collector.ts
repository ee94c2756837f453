// Starts the real collector (otelcol-agentcost) for the client's tests: $AGENTCOST_COLLECTOR, else
// built with `go build`; config and policy from clients/testdata/ (shared with the Python client's
// tests), free loopback ports, a fresh temp dir.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// dist/test/collector.js -> the repository root.
const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..", "..");
const TESTDATA = join(REPO, "clients", "testdata");

export const AGENT = "test-agent";
export const AGENT_TOKEN = "agent-token-for-the-clients-tests";
export const REVIEWER_TOKEN = "reviewer-token-for-the-clients-tests";

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => res(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

export class Collector {
  private constructor(
    readonly endpoint: string,
    readonly dir: string,
    readonly agentTokenFile: string,
    private readonly proc: ChildProcess,
    private readonly logFd: number,
  ) {}

  static async start(): Promise<Collector> {
    const dir = mkdtempSync(join(tmpdir(), "agentcost-clients-ts-"));
    let binary = process.env.AGENTCOST_COLLECTOR;
    if (!binary) {
      binary = join(dir, "otelcol-agentcost");
      execFileSync("go", ["build", "-o", binary, "./cmd/otelcol-agentcost"], { cwd: REPO, stdio: "inherit" });
    }
    const port = await freePort();
    const subst: Record<string, string> = {
      "${BUDGET_ENDPOINT}": `127.0.0.1:${port}`,
      "${OTLP_ENDPOINT}": `127.0.0.1:${await freePort()}`,
      "${METRICS_ENDPOINT}": `127.0.0.1:${await freePort()}`,
      "${DIR}": dir,
    };
    let config = readFileSync(join(TESTDATA, "config.yaml"), "utf8");
    for (const [k, v] of Object.entries(subst)) config = config.split(k).join(v);
    writeFileSync(join(dir, "config.yaml"), config);
    writeFileSync(join(dir, "agent.token"), AGENT_TOKEN);
    writeFileSync(join(dir, "reviewer.token"), REVIEWER_TOKEN);
    copyFileSync(join(TESTDATA, "policy.yaml"), join(dir, "policy.yaml"));
    const logFd = openSync(join(dir, "collector.log"), "w");
    const proc = spawn(binary, ["--config", join(dir, "config.yaml")], { stdio: ["ignore", logFd, logFd] });
    const c = new Collector(`http://127.0.0.1:${port}`, dir, join(dir, "agent.token"), proc, logFd);
    try {
      await c.waitReady();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  log(): string {
    return readFileSync(join(this.dir, "collector.log"), "utf8").slice(-4000);
  }

  private async waitReady(): Promise<void> {
    for (let i = 0; i < 600; i++) { // bounded: 60 s
      if (this.proc.exitCode !== null) throw new Error(`collector exited with ${this.proc.exitCode}:\n${this.log()}`);
      try {
        const res = await fetch(`${this.endpoint}/v1/budgets`, { headers: { Authorization: `Bearer ${REVIEWER_TOKEN}` } });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`collector not ready within 60s:\n${this.log()}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
    closeSync(this.logFd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
