// A node that requires credentials: the API key as a bearer token, and the errors for a
// missing key, a missing scope and a rate limit.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

import { AuthError, RateLimitedError, type BatonError } from '@baton-dev/client';
import { baseEnv } from '../scripts/node.mjs';
import { useNode } from './node.js';

const secrets: Record<string, string> = {};

/** `baton keys create` on the data directory, offline; the secret is the last line. */
function createKey(bin: string, dataDir: string, name: string, scopes: string, extra: string[] = []): string {
  const out = execFileSync(
    bin,
    ['keys', 'create', '--name', name, '--principal', 'sdk', '--scopes', scopes, '--data-dir', dataDir, ...extra],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: baseEnv() },
  );
  const last = out.trim().split('\n').at(-1)?.trim() ?? '';
  assert.match(last, /^bk_/, `no secret in: ${out}`);
  return last;
}

const node = useNode({
  env: { BATON_AUTH__REQUIRED: 'true' },
  prepare(dataDir, bin) {
    secrets['admin'] = createKey(bin, dataDir, 'sdk-admin', 'admin');
    secrets['reader'] = createKey(bin, dataDir, 'sdk-reader', 'tasks:read');
    secrets['slow'] = createKey(bin, dataDir, 'sdk-slow', 'tasks:read,tasks:write', ['--rate-limit', '1/s']);
  },
});

test('without a key the node answers 401: an AuthError', async () => {
  await assert.rejects(node.client({ apiKey: '' }).list(), (e: unknown) => {
    assert.ok(e instanceof AuthError, String(e));
    assert.equal(e.status, 401);
    assert.equal(e.kind, 'auth');
    assert.equal(e.code, 'unauthenticated');
    assert.match(e.message, /requires a credential/);
    return true;
  });
});

test('with a key, calls work', async () => {
  const baton = node.client({ apiKey: secrets['admin'] });
  const done = await baton.call('baton__echo', { secured: true });
  assert.deepEqual(done.result?.structuredContent, { secured: true });
});

test('a key without the scope is refused with 403: an AuthError naming it', async () => {
  const baton = node.client({ apiKey: secrets['reader'] });
  await baton.list(); // reading is allowed
  await assert.rejects(baton.submit('baton__echo', {}), (e: unknown) => {
    assert.ok(e instanceof AuthError, String(e));
    assert.equal(e.status, 403);
    assert.equal(e.code, 'permission_denied');
    assert.match(e.message, /tasks:write/);
    return true;
  });
});

test('a key over its rate limit gets RateLimitedError with retryAfterMs', async () => {
  const baton = node.client({ apiKey: secrets['slow'] });
  const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => baton.list({ limit: 1 })));
  const limited = outcomes
    .filter((o): o is PromiseRejectedResult => o.status === 'rejected')
    .map((o) => o.reason as BatonError);
  assert.ok(outcomes.some((o) => o.status === 'fulfilled'), 'the first request is allowed');
  assert.ok(limited.length > 0, 'ten requests at once exceed 1/s');
  for (const e of limited) {
    assert.ok(e instanceof RateLimitedError, String(e));
    assert.equal(e.status, 429);
    assert.equal(e.kind, 'rate_limited');
    assert.equal(e.code, 'resource_exhausted');
    assert.ok(e.retryAfterMs !== undefined && e.retryAfterMs > 0, `retryAfterMs: ${e.retryAfterMs}`);
  }
});
