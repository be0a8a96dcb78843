// watch survives the node restarting under it: the stream breaks, the client reconnects
// with Last-Event-ID, and the events go on without a gap or a repeat.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { startNode, type RunningNode } from '../scripts/node.mjs';
import { Baton, type TaskEvent } from '@baton-dev/client';

test('watch resumes after the node restarts', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-ts-sdk-restart-'));
  let first: RunningNode | undefined;
  let second: RunningNode | undefined;
  try {
    first = await startNode({ dataDir });
    const streams: Array<string | null> = [];
    const recording: typeof fetch = (input, init) => {
      if (new URL(String(input)).pathname.endsWith('/events')) {
        streams.push(new Headers(init?.headers).get('last-event-id'));
      }
      return fetch(input, init);
    };
    const baton = new Baton({ url: first.url, fetch: recording });
    const { task_id } = await baton.submit('baton__sleep', { ms: 3000, steps: 30 });

    const events: TaskEvent[] = [];
    let seqBeforeRestart: number | undefined;
    for await (const ev of baton.watch(task_id, { logs: false, reconnects: 20 })) {
      if (ev.kind === 'log') continue;
      events.push(ev);
      if (ev.kind === 'progress' && first && !second) {
        // Restart the node (same data, same port) while the stream is open.
        seqBeforeRestart = ev.seq;
        await first.stop();
        second = await startNode({ dataDir, port: first.port });
      }
    }
    assert.ok(second, 'the node was restarted');
    assert.equal(events.at(-1)?.kind, 'completed', events.map((e) => e.kind).join(','));
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'no event twice, none out of order');
    // The first stream had no Last-Event-ID; a later one resumed from the last event seen.
    assert.equal(streams[0], null);
    assert.ok(streams.length >= 2, `streams opened: ${JSON.stringify(streams)}`);
    const resumedFrom = streams.slice(1).map(Number);
    assert.ok(resumedFrom.every((s) => s >= (seqBeforeRestart ?? Infinity)), JSON.stringify(streams));
    // The events after the restart came through the new node.
    assert.ok(seqs.some((s) => s > (seqBeforeRestart ?? Infinity)));
    const task = await baton.get(task_id);
    assert.equal(task.status, 'completed');
  } finally {
    await first?.stop();
    await second?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
