// Tasks against a real node: submit, wait, watch, cancel, failures, errors, idempotency,
// paging, logs.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import {
  BatonError,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  TaskFailedError,
  TimeoutError,
  type TaskEvent,
  type WatchEvent,
} from '@baton-dev/client';
import { useNode } from './node.js';

const node = useNode();

test('submit, then wait for the result', async () => {
  const baton = node.client();
  const accepted = await baton.submit('baton__echo', { greeting: 'hello', n: 3 });
  assert.match(accepted.task_id, /^[0-9a-f-]{36}$/);
  assert.equal(accepted.created, true);
  assert.equal(accepted.poll_url, `/v1/tasks/${accepted.task_id}`);

  const done = await baton.wait(accepted.task_id);
  assert.equal(done.status, 'completed');
  assert.equal(done.finished, true);
  assert.deepEqual(done.result?.structuredContent, { greeting: 'hello', n: 3 });

  const task = await baton.get(accepted.task_id);
  assert.equal(task.status, 'completed');
  assert.equal(task.tool, 'baton__echo');
  assert.deepEqual(task.arguments, { greeting: 'hello', n: 3 });
});

test('call submits and waits in one step', async () => {
  const done = await node.client().call('baton__echo', { x: [1, 2] }, { priority: 'high' });
  assert.deepEqual(done.result?.structuredContent, { x: [1, 2] });
});

test('result answers at once while the task runs, and finished once it is over', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 1500, steps: 3 });
  const early = await baton.result(task_id);
  assert.equal(early.finished, false);
  assert.ok(early.status === 'pending' || early.status === 'running', early.status);
  const late = await baton.result(task_id, { wait: 30 });
  assert.equal(late.finished, true);
  assert.equal(late.status, 'completed');
});

test('wait gives up after its timeout with a TimeoutError; the task runs on', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 60_000, steps: 2 });
  await assert.rejects(baton.wait(task_id, { timeoutMs: 1200 }), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.code, 'wait_timeout');
    return true;
  });
  const task = await baton.get(task_id);
  assert.ok(task.status === 'pending' || task.status === 'running', task.status);
  await baton.cancel(task_id);
});

test('watch yields the events in order, progress rising, and ends with the result', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 800, steps: 4 });
  const events: WatchEvent[] = [];
  for await (const ev of baton.watch(task_id)) events.push(ev);

  const taskEvents = events.filter((e): e is TaskEvent => e.kind !== 'log');
  const kinds = taskEvents.map((e) => e.kind);
  assert.equal(kinds[0], 'created', kinds.join(','));
  assert.ok(kinds.includes('started'), kinds.join(','));
  assert.equal(kinds.at(-1), 'completed', kinds.join(','));
  // Sequence numbers strictly increase: nothing twice, nothing out of order.
  const seqs = taskEvents.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
  // Progress reports, one per step, rising.
  const progress = taskEvents.filter((e) => e.kind === 'progress').map((e) => e.progress ?? -1);
  assert.ok(progress.length >= 3, `progress events: ${JSON.stringify(progress)}`);
  for (let i = 1; i < progress.length; i++) {
    assert.ok(progress[i]! > progress[i - 1]!, `progress not rising: ${JSON.stringify(progress)}`);
  }
  const final = taskEvents.at(-1)!;
  assert.equal(final.status, 'completed');
  assert.deepEqual(final.result?.structuredContent, { slept_ms: 800, steps: 4 });
  assert.equal(events.at(-1), final, 'the stream ends with the final event');
  // The tool's log lines come along, before the final event.
  const logs = events.flatMap((e) => (e.kind === 'log' ? [e.line.data] : []));
  assert.deepEqual(logs, ['sleeping 800 ms in 4 steps', 'awake']);
});

test('watch of a finished task replays its events and ends', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__echo', { again: true });
  await baton.wait(task_id);
  const kinds: string[] = [];
  for await (const ev of baton.watch(task_id, { logs: false })) kinds.push(ev.kind);
  assert.equal(kinds[0], 'created');
  assert.equal(kinds.at(-1), 'completed');
});

test('watch resumes after lastEventId without repeating events', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 400, steps: 2 });
  await baton.wait(task_id);
  const all: TaskEvent[] = [];
  for await (const ev of baton.watch(task_id, { logs: false })) if (ev.kind !== 'log') all.push(ev);
  assert.ok(all.length >= 3);
  const from = all[1]!.seq;
  const rest: number[] = [];
  for await (const ev of baton.watch(task_id, { logs: false, lastEventId: from })) {
    if (ev.kind !== 'log') rest.push(ev.seq);
  }
  assert.deepEqual(
    rest,
    all.slice(2).map((e) => e.seq),
  );
});

test('breaking out of watch stops the stream', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 60_000, steps: 60 });
  let seen = 0;
  for await (const ev of baton.watch(task_id)) {
    seen++;
    if (ev.kind === 'created') break;
  }
  assert.equal(seen, 1);
  await baton.cancel(task_id);
});

test('cancel stops a running task; waiting for it raises TaskFailedError(cancelled)', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 60_000, steps: 600 });
  // Wait until it runs: the first progress report.
  for await (const ev of baton.watch(task_id, { logs: false })) {
    if (ev.kind === 'progress') break;
  }
  const answer = await baton.cancel(task_id);
  assert.equal(answer.task_id, task_id);
  await assert.rejects(baton.wait(task_id, { timeoutMs: 30_000 }), (e: unknown) => {
    assert.ok(e instanceof TaskFailedError, String(e));
    assert.equal(e.taskStatus, 'cancelled');
    assert.equal(e.taskId, task_id);
    assert.equal(e.kind, 'task_failed');
    return true;
  });
  // Cancelling what is over is a conflict.
  await assert.rejects(baton.cancel(task_id), (e: unknown) => {
    assert.ok(e instanceof ConflictError, String(e));
    assert.equal(e.status, 409);
    assert.equal(e.code, 'conflict');
    return true;
  });
});

test('watch follows a retried task through its new run', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 60_000, steps: 600 });
  await baton.cancel(task_id);
  await assert.rejects(baton.wait(task_id), TaskFailedError);
  const again = await baton.retry(task_id);
  assert.equal(again.status === 'pending' || again.status === 'running', true);
  // A stream opened now replays the old `cancelled` first; the watch goes on past it.
  const kinds: string[] = [];
  let stopped = false;
  for await (const ev of baton.watch(task_id, { logs: false })) {
    kinds.push(ev.kind);
    if (ev.kind === 'progress' && !stopped) {
      stopped = true;
      await baton.cancel(task_id);
    }
  }
  assert.ok(kinds.indexOf('cancelled') < kinds.indexOf('retried'), kinds.join(','));
  assert.ok(kinds.includes('progress'), kinds.join(','));
  assert.equal(kinds.at(-1), 'cancelled', kinds.join(','));
  assert.equal(kinds.filter((k) => k === 'cancelled').length, 2, kinds.join(','));
});

test('a failed task raises TaskFailedError with its error code and message', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit(
    'baton__fail',
    { message: 'the disk is on fire', retryable: false },
    { max_attempts: 1 },
  );
  await assert.rejects(baton.wait(task_id), (e: unknown) => {
    assert.ok(e instanceof TaskFailedError, String(e));
    assert.ok(e instanceof BatonError);
    assert.equal(e.taskStatus, 'failed');
    assert.equal(e.code, e.taskError?.code);
    assert.ok(e.code.length > 0);
    assert.match(e.message, /the disk is on fire/);
    assert.equal(e.retryable, false);
    return true;
  });
  // Its events end with the failure, which carries the error.
  const first: TaskEvent[] = [];
  for await (const ev of baton.watch(task_id, { logs: false })) if (ev.kind !== 'log') first.push(ev);
  const failed = first.at(-1)!;
  assert.equal(failed.kind, 'failed');
  assert.equal(failed.error?.code, 'tool_error');

  // Retrying runs it again, and it fails the same way.
  const retried = await baton.retry(task_id);
  assert.equal(retried.task_id, task_id);
  assert.ok(retried.status === 'pending' || retried.status === 'running', retried.status);
  await assert.rejects(baton.wait(task_id), TaskFailedError);
  // The stream ends at a final state; resuming after the first failure shows the rerun.
  const rerun: string[] = [];
  for await (const ev of baton.watch(task_id, { logs: false, lastEventId: failed.seq })) rerun.push(ev.kind);
  assert.deepEqual(rerun, ['retried', 'started', 'failed']);
});

test('an unknown tool is refused with its code and status, and nothing is stored', async () => {
  const baton = node.client();
  await assert.rejects(baton.submit('nosuch__tool', {}), (e: unknown) => {
    assert.ok(e instanceof InvalidRequestError, String(e));
    assert.equal(e.status, 400);
    assert.equal(e.code, 'invalid_argument');
    assert.equal(e.kind, 'invalid');
    assert.match(e.message, /unknown tool `nosuch__tool`/);
    return true;
  });
  const page = await baton.list({ tool: 'nosuch__tool' });
  assert.equal(page.tasks.length, 0);
});

test('arguments that break the tool schema are an InvalidRequestError', async () => {
  await assert.rejects(node.client().submit('baton__sleep', { ms: 'long' }), (e: unknown) => {
    assert.ok(e instanceof InvalidRequestError, String(e));
    assert.equal(e.status, 400);
    assert.equal(e.code, 'invalid_argument');
    assert.equal(e.kind, 'invalid');
    assert.match(e.message, /\/ms/);
    return true;
  });
});

test('an unknown task is a NotFoundError; a malformed id an InvalidRequestError', async () => {
  const baton = node.client();
  await assert.rejects(baton.get(randomUUID()), (e: unknown) => {
    assert.ok(e instanceof NotFoundError, String(e));
    assert.equal(e.status, 404);
    assert.equal(e.code, 'not_found');
    return true;
  });
  await assert.rejects(baton.get('not-an-id'), (e: unknown) => {
    assert.ok(e instanceof InvalidRequestError, String(e));
    assert.match(e.message, /not a valid task id/);
    return true;
  });
});

test('the same idempotency key gives the same task', async () => {
  const baton = node.client();
  const key = `ts-sdk-${randomUUID()}`;
  const first = await baton.submit('baton__echo', { once: 1 }, { idempotency_key: key });
  const second = await baton.submit('baton__echo', { once: 1 }, { idempotency_key: key });
  assert.equal(first.created, true);
  assert.equal(second.created, false);
  assert.equal(second.task_id, first.task_id);
  const other = await baton.submit('baton__echo', { once: 1 }, { idempotency_key: `${key}-other` });
  assert.notEqual(other.task_id, first.task_id);
});

test('list pages through the tasks of a queue, newest first', async () => {
  const baton = node.client();
  const queue = `paging-${randomUUID().slice(0, 8)}`;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push((await baton.submit('baton__echo', { i }, { queue, priority: 'low' })).task_id);
  }
  const first = await baton.list({ queue, limit: 2 });
  assert.equal(first.tasks.length, 2);
  assert.ok(first.next_cursor, 'a next cursor after a full page');
  const second = await baton.list({ queue, limit: 2, cursor: first.next_cursor });
  assert.equal(second.tasks.length, 2);
  const third = await baton.list({ queue, limit: 2, cursor: second.next_cursor });
  assert.equal(third.tasks.length, 1);
  assert.ok(!third.next_cursor, 'no cursor after the last page');
  const paged = [...first.tasks, ...second.tasks, ...third.tasks].map((t) => t.task_id);
  assert.deepEqual(paged, [...ids].reverse());

  const all: string[] = [];
  for await (const task of baton.listAll({ queue, limit: 2 })) {
    assert.equal(task.queue, queue);
    all.push(task.task_id);
  }
  assert.deepEqual(all, [...ids].reverse());
});

test('logs of a task, a page at a time', async () => {
  const baton = node.client();
  const { task_id } = await baton.submit('baton__sleep', { ms: 300, steps: 3 });
  await baton.wait(task_id);
  const all = await baton.logs(task_id);
  assert.equal(all.finished, true);
  assert.deepEqual(
    all.logs.map((l) => [l.level, l.logger, l.data, l.task_id, l.attempt]),
    [
      ['info', 'baton__sleep', 'sleeping 300 ms in 3 steps', task_id, 1],
      ['info', 'baton__sleep', 'awake', task_id, 1],
    ],
  );
  const first = await baton.logs(task_id, { limit: 1 });
  assert.equal(first.logs.length, 1);
  assert.equal(first.logs[0]?.data, 'sleeping 300 ms in 3 steps');
  const second = await baton.logs(task_id, { after: first.next_after });
  assert.deepEqual(
    second.logs.map((l) => l.data),
    ['awake'],
  );
  assert.equal(second.next_after, all.next_after);
});

test('tools lists the built-ins with their input schemas; servers lists baton', async () => {
  const baton = node.client();
  const tools = await baton.tools();
  const echo = tools.find((t) => t.name === 'baton__echo');
  assert.ok(echo, tools.map((t) => t.name).join(','));
  assert.equal(echo.server, 'baton');
  assert.equal(typeof echo.input_schema, 'object');
  const servers = await baton.servers();
  assert.ok(Array.isArray(servers));
});

test('a custom fetch sees every request, with JSON bodies and extra headers', async () => {
  const seen: Array<{ method: string; path: string; type: string | null; extra: string | null }> = [];
  const recording: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    seen.push({
      method: init?.method ?? 'GET',
      path: new URL(String(input)).pathname,
      type: headers.get('content-type'),
      extra: headers.get('x-request-tag'),
    });
    return fetch(input, init);
  };
  const baton = node.client({ fetch: recording, headers: { 'x-request-tag': 'sdk-test' } });
  const { task_id } = await baton.submit('baton__echo', { via: 'custom fetch' });
  await baton.get(task_id);
  assert.deepEqual(seen, [
    { method: 'POST', path: '/v1/tasks', type: 'application/json', extra: 'sdk-test' },
    { method: 'GET', path: `/v1/tasks/${task_id}`, type: null, extra: 'sdk-test' },
  ]);
});
