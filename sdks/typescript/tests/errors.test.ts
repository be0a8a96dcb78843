// Error bodies and headers become the right error class, without a node.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  AuthError,
  BatonError,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  RateLimitedError,
  UnavailableError,
} from '../src/index.js';
import { errorFromResponse, parseRetryAfter } from '../src/errors.js';

const body = (code: string, message: string, details?: unknown) =>
  JSON.stringify({ error: { code, message, ...(details === undefined ? {} : { details }) } });

test('status picks the class and kind; code, message and details come from the body', () => {
  const cases: Array<[number, new (...a: never[]) => BatonError, string]> = [
    [400, InvalidRequestError, 'invalid'],
    [401, AuthError, 'auth'],
    [403, AuthError, 'auth'],
    [404, NotFoundError, 'not_found'],
    [409, ConflictError, 'conflict'],
    [415, InvalidRequestError, 'invalid'],
    [429, RateLimitedError, 'rate_limited'],
    [503, UnavailableError, 'unavailable'],
  ];
  for (const [status, cls, kind] of cases) {
    const e = errorFromResponse(status, new Headers(), body('some_code', 'what went wrong', [{ step: 'a' }]));
    assert.ok(e instanceof cls, `${status} -> ${cls.name}`);
    assert.ok(e instanceof BatonError);
    assert.equal(e.kind, kind);
    assert.equal(e.status, status);
    assert.equal(e.code, 'some_code');
    assert.equal(e.message, 'what went wrong');
    assert.deepEqual(e.details, [{ step: 'a' }]);
  }
  const other = errorFromResponse(500, new Headers(), body('internal', 'boom'));
  assert.equal(other.constructor, BatonError);
  assert.equal(other.kind, 'internal');
});

test('a body that is not the API error format keeps its text', () => {
  const e = errorFromResponse(502, new Headers(), 'Bad Gateway from a proxy');
  assert.ok(e instanceof UnavailableError);
  assert.equal(e.code, 'http_502');
  assert.equal(e.message, 'Bad Gateway from a proxy');
});

test('Retry-After in seconds or as a date', () => {
  const e = errorFromResponse(429, new Headers({ 'retry-after': '3' }), body('resource_exhausted', 'slow down'));
  assert.equal(e.retryAfterMs, 3000);
  const now = Date.parse('2030-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Tue, 01 Jan 2030 00:00:10 GMT', now), 10_000);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null), undefined);
});
