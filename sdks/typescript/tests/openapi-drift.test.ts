// The committed API types must be what openapi-typescript makes of the node's live
// /openapi.json: a change to the API that is not regenerated here fails this test.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { generateFromNode, generatedPath } from '../scripts/generate.mjs';
import { useNode } from './node.js';

const node = useNode();

test('src/generated/openapi.ts matches the live /openapi.json', async () => {
  const live = await generateFromNode(node.url);
  const committed = readFileSync(generatedPath(), 'utf8');
  if (live !== committed) {
    const a = committed.split('\n');
    const b = live.split('\n');
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    assert.fail(
      `src/generated/openapi.ts is out of date with the API (first difference at line ${i + 1}):\n` +
        `  committed: ${a[i] ?? '<end of file>'}\n` +
        `  live:      ${b[i] ?? '<end of file>'}\n` +
        'Run `npm run generate` (with BATON_BIN set) and commit the result.',
    );
  }
});

test('the live document describes the operations the client calls', async () => {
  const res = await fetch(`${node.url}/openapi.json`);
  const doc = (await res.json()) as { paths: Record<string, Record<string, { operationId?: string }>> };
  const ops = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId)));
  for (const id of [
    'submitTask',
    'getTask',
    'listTasks',
    'cancelTask',
    'retryTask',
    'getTaskResult',
    'taskEvents',
    'answerTaskInput',
    'taskLogs',
    'submitWorkflow',
    'getWorkflow',
    'listWorkflows',
    'cancelWorkflow',
    'retryWorkflow',
    'getWorkflowResult',
    'getWorkflowDag',
    'listServers',
    'listTools',
  ]) {
    assert.ok(ops.has(id), `the API has no operation ${id}`);
  }
});
