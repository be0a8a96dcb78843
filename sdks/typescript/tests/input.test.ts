// A task that asks its client for input (an upstream MCP server's elicitation), answered
// with respond(); and servers registered at runtime.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { testserverBin } from '../scripts/node.mjs';
import { ConflictError, InvalidRequestError, type Task } from '@baton-dev/client';
import { useNode } from './node.js';

const node = useNode();

async function waitForStatus(id: string, status: Task['status']): Promise<Task> {
  const baton = node.client();
  for await (const ev of baton.watch(id, { logs: false })) {
    if (ev.kind !== 'log' && ev.status === status) break;
  }
  const task = await baton.get(id);
  assert.equal(task.status, status);
  return task;
}

test('an input_required task is answered with respond and completes', async () => {
  const baton = node.client();
  const server = await baton.addServer({ name: 'ts', command: testserverBin() });
  assert.equal(server.name, 'ts');
  assert.ok((await baton.servers()).some((s) => s.name === 'ts'));
  assert.ok((await baton.tools()).some((t) => t.name === 'ts__task_job'));

  const { task_id } = await baton.submit('ts__task_job', { id: 'sdk-ask', duration_ms: 0, ask: true });
  const waiting = await waitForStatus(task_id, 'input_required');
  const requests = waiting.input_requests as Record<string, { method?: string }> | null | undefined;
  assert.ok(requests, 'the task shows its input requests');
  const keys = Object.keys(requests);
  assert.equal(keys.length, 1);
  const key = keys[0]!;
  assert.equal(requests[key]?.method, 'elicitation/create');

  // A response to a request that does not exist is refused.
  await assert.rejects(baton.respond(task_id, { nope: {} }), InvalidRequestError);

  const answered = await baton.respond(task_id, { [key]: { action: 'accept', content: { answer: 'forty-two' } } });
  assert.equal(answered.task_id, task_id);
  const done = await baton.wait(task_id, { timeoutMs: 30_000 });
  assert.match(done.result?.content?.[0]?.text ?? '', /answered: forty-two/);

  // Nothing more to answer.
  await assert.rejects(baton.respond(task_id, {}), ConflictError);

  const removed = await baton.removeServer('ts');
  assert.ok(removed);
  assert.ok(!(await baton.servers()).some((s) => s.name === 'ts'));
});
