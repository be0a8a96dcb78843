// Starts a real Baton node for the tests and the type generator: `$BATON_BIN serve` on a
// free loopback port with a fresh data directory, ready when `GET /readyz` answers 200.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's directory (where package.json is), from this file's place in it. */
export function packageRoot() {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** The binary under test: BATON_BIN, else the repository's debug build. */
export function batonBin() {
  const fromEnv = process.env.BATON_BIN;
  const bin = fromEnv && fromEnv.length > 0 ? resolve(fromEnv) : resolve(packageRoot(), '../../target/debug/baton');
  if (!existsSync(bin)) {
    throw new Error(
      `the Baton binary is missing: ${bin} does not exist. ` +
        'Build it (cargo build -p baton) or point BATON_BIN at a baton executable.',
    );
  }
  return bin;
}

/**
 * This process's environment without BATON_* variables: a node reads those as its
 * configuration, and refuses ones it does not know (such as BATON_BIN).
 * @returns {Record<string, string | undefined>}
 */
export function baseEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BATON_')));
}

/** @returns {Promise<number>} a port nothing listens on right now. */
function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

/**
 * @typedef {object} RunningNode
 * @property {string} url   the node's base URL, e.g. http://127.0.0.1:43123
 * @property {number} port
 * @property {string} dataDir
 * @property {() => string} output  what the node printed so far (stdout and stderr)
 * @property {() => Promise<void>} stop  stops the node and removes its data directory
 */

/**
 * Starts a node and waits until it is ready (at most `readyTimeoutMs`). The node gets
 * none of this process's BATON_* variables, only those of `env`; `prepare` runs on the
 * fresh data directory before the node starts (e.g. to create API keys offline). With
 * `dataDir` (kept when the node stops) and `port`, a node can be started again where
 * another one was.
 * @param {{ readyTimeoutMs?: number, args?: string[], env?: Record<string, string>,
 *   prepare?: (dataDir: string, bin: string) => void, dataDir?: string, port?: number }} [opts]
 * @returns {Promise<RunningNode>}
 */
export async function startNode(opts = {}) {
  const bin = batonBin();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  let lastError = '';
  // A port found free can be taken before the node binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = opts.port ?? (await freePort());
    const ownDir = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'baton-ts-sdk-'));
    const removeDir = () => {
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    };
    try {
      opts.prepare?.(dataDir, bin);
    } catch (e) {
      removeDir();
      throw e;
    }
    const env = baseEnv();
    const child = spawn(
      bin,
      ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, ...(opts.args ?? [])],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...(opts.env ?? {}) } },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    /** @type {number | null} */
    let exitCode = null;
    const exited = new Promise((ok) =>
      child.on('exit', (code, signal) => {
        exitCode = code ?? (signal ? 128 : 1);
        ok(undefined);
      }),
    );
    const url = `http://127.0.0.1:${port}`;
    const stop = async () => {
      if (exitCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      removeDir();
    };
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline && exitCode === null) {
      try {
        const res = await fetch(`${url}/readyz`);
        await res.arrayBuffer();
        if (res.status === 200) return { url, port, dataDir, output: () => output, stop };
      } catch {
        // not listening yet
      }
      await new Promise((ok) => setTimeout(ok, 100));
    }
    await stop();
    lastError =
      exitCode === null
        ? `the node was not ready within ${readyTimeoutMs} ms:\n${output}`
        : `the node exited with ${exitCode}:\n${output}`;
    if (exitCode === null || opts.port !== undefined) break;
  }
  throw new Error(`could not start ${bin}: ${lastError}`);
}

/** The MCP test server: BATON_TESTSERVER_BIN, else `baton-testserver` beside the binary under test. */
export function testserverBin() {
  const fromEnv = process.env.BATON_TESTSERVER_BIN;
  const bin =
    fromEnv && fromEnv.length > 0 ? resolve(fromEnv) : join(dirname(batonBin()), 'baton-testserver');
  if (!existsSync(bin)) {
    throw new Error(
      `the MCP test server is missing: ${bin} does not exist. ` +
        'Build it (cargo build -p baton-testserver) or point BATON_TESTSERVER_BIN at it.',
    );
  }
  return bin;
}
