// The SSE parser on its own: chunk boundaries, line endings, fields, comments.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseSse, type SseMessage } from '../src/sse.js';

async function parse(chunks: string[]): Promise<SseMessage[]> {
  async function* gen() {
    yield* chunks;
  }
  const out: SseMessage[] = [];
  for await (const m of parseSse(gen())) out.push(m);
  return out;
}

test('events with ids, names and data, in order', async () => {
  const msgs = await parse(['id: 1\nevent: created\ndata: {"a":1}\n\n', 'id: 2\nevent: progress\ndata: {"a":2}\n\n']);
  assert.deepEqual(
    msgs.map((m) => [m.id, m.event, m.data, m.hasId]),
    [
      ['1', 'created', '{"a":1}', true],
      ['2', 'progress', '{"a":2}', true],
    ],
  );
});

test('a message split at every character gives the same events', async () => {
  const text = 'event: log\r\ndata: x\r\n\r\n: keep-alive\r\n\r\nid: 7\rdata: y\r\r';
  const whole = await parse([text]);
  const split = await parse([...text]);
  assert.deepEqual(split, whole);
  assert.deepEqual(
    whole.map((m) => [m.event, m.data, m.id]),
    [
      ['log', 'x', undefined],
      ['message', 'y', '7'],
    ],
  );
});

test('multi-line data is joined with newlines; one leading space is dropped', async () => {
  const [m] = await parse(['data:first\ndata:  second\ndata\n\n']);
  assert.equal(m?.data, 'first\n second\n');
});

test('comments, unknown fields and empty events dispatch nothing; the id persists', async () => {
  const msgs = await parse([': hello\nfoo: bar\n\nid: 5\n\ndata: after\n\n']);
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0]?.id, '5');
  assert.equal(msgs[0]?.hasId, false);
  assert.equal(msgs[0]?.event, 'message');
});

test('an event the stream cut off is not dispatched', async () => {
  const msgs = await parse(['data: complete\n\ndata: cut']);
  assert.deepEqual(
    msgs.map((m) => m.data),
    ['complete'],
  );
});

test('retry is read when it is a number', async () => {
  const msgs = await parse(['retry: 1500\ndata: a\n\nretry: soon\ndata: b\n\n']);
  assert.deepEqual(
    msgs.map((m) => m.retry),
    [1500, undefined],
  );
});
