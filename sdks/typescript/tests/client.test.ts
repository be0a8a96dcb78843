// The client's own behaviour where no node is needed: unreachable addresses, timeouts,
// aborts, configuration.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';

import { Baton, DEFAULT_URL, TimeoutError, UnavailableError } from '@baton-dev/client';

// A TCP server that accepts connections and never answers.
let silent: Server;
let silentUrl = '';
const sockets: Socket[] = [];
before(async () => {
  silent = createServer((s) => sockets.push(s));
  await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
  const addr = silent.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  silentUrl = `http://127.0.0.1:${addr.port}`;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((ok) => silent.close(ok));
});

async function closedPortUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const addr = srv.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  await new Promise((ok) => srv.close(ok));
  return `http://127.0.0.1:${addr.port}`;
}

test('the URL comes from the options, else BATON_URL, else the default', () => {
  const saved = process.env.BATON_URL;
  try {
    delete process.env.BATON_URL;
    assert.equal(new Baton().url, DEFAULT_URL);
    process.env.BATON_URL = 'http://10.1.2.3:9000/';
    assert.equal(new Baton().url, 'http://10.1.2.3:9000');
    assert.equal(new Baton({ url: 'http://localhost:1/' }).url, 'http://localhost:1');
  } finally {
    if (saved === undefined) delete process.env.BATON_URL;
    else process.env.BATON_URL = saved;
  }
});

test('a node that cannot be reached is an UnavailableError', async () => {
  const baton = new Baton({ url: await closedPortUrl() });
  await assert.rejects(baton.tools(), (e: unknown) => {
    assert.ok(e instanceof UnavailableError);
    assert.equal(e.kind, 'unavailable');
    assert.equal(e.status, 0);
    assert.match(e.message, /cannot reach/);
    return true;
  });
});

test('a request with no answer within timeoutMs is a TimeoutError', async () => {
  const baton = new Baton({ url: silentUrl, timeoutMs: 300 });
  await assert.rejects(baton.get('019aa6e2-5b0e-7a1c-9f4e-6c1d2b3a4f50'), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.kind, 'timeout');
    assert.match(e.message, /within 300 ms/);
    return true;
  });
});

test('an aborted call rejects with the signal reason', async () => {
  const baton = new Baton({ url: silentUrl });
  const controller = new AbortController();
  const reason = new Error('stop it');
  const pending = baton.tools({ signal: controller.signal });
  setTimeout(() => controller.abort(reason), 50);
  await assert.rejects(pending, (e: unknown) => e === reason);
});
