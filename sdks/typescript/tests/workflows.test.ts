// Workflows against a real node: a diamond with references, waited, its DAG; failures,
// cancel and retry; validation errors.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import {
  InvalidRequestError,
  WorkflowFailedError,
  type WorkflowDefinition,
} from '@baton-dev/client';
import { useNode } from './node.js';

const node = useNode();

//      a
//     / \
//    b   c
//     \ /
//      d
const diamond = (name: string): WorkflowDefinition => ({
  name,
  steps: [
    { id: 'a', tool: 'baton__echo', arguments: { n: 21, word: 'blue' } },
    {
      id: 'b',
      tool: 'baton__echo',
      depends_on: ['a'],
      arguments: { n: '${steps.a.result.structuredContent.n}' },
    },
    {
      id: 'c',
      tool: 'baton__echo',
      depends_on: ['a'],
      arguments: { text: 'the sky is ${steps.a.result.structuredContent.word}' },
    },
    {
      id: 'd',
      tool: 'baton__echo',
      depends_on: ['b', 'c'],
      arguments: {
        from_b: '${steps.b.result.structuredContent.n}',
        from_c: '${steps.c.result.structuredContent.text}',
      },
    },
  ],
});

test('a diamond workflow with references runs, is waited for, and has a DAG', async () => {
  const baton = node.client();
  const name = `diamond-${randomUUID().slice(0, 8)}`;
  const submitted = await baton.submitWorkflow(diamond(name));
  assert.equal(submitted.name, name);
  assert.equal(submitted.steps?.length, 4);

  const result = await baton.waitWorkflow(submitted.workflow_id, { timeoutMs: 60_000 });
  assert.equal(result.status, 'completed');
  // The final step is d; a whole-string reference keeps its type (a number stays a number).
  const d = result.outputs['d'] as { structuredContent?: Record<string, unknown> };
  assert.deepEqual(d.structuredContent, { from_b: 21, from_c: 'the sky is blue' });
  assert.deepEqual(Object.keys(result.outputs), ['d']);

  const wf = await baton.getWorkflow(submitted.workflow_id);
  assert.equal(wf.status, 'completed');
  assert.equal(wf.progress.steps_total, 4);
  assert.equal(wf.progress.steps_finished, 4);
  assert.deepEqual(
    wf.steps?.map((s) => [s.step_id, s.state]).sort(),
    [
      ['a', 'completed'],
      ['b', 'completed'],
      ['c', 'completed'],
      ['d', 'completed'],
    ],
  );
  // Each step is an ordinary task, listed under the workflow.
  const stepTasks = await baton.list({ workflow_id: submitted.workflow_id });
  assert.equal(stepTasks.tasks.length, 4);
  for (const t of stepTasks.tasks) assert.equal(t.workflow_id, submitted.workflow_id);

  const dag = await baton.workflowDag(submitted.workflow_id);
  assert.deepEqual(
    dag.nodes.map((n) => n.id),
    ['a', 'b', 'c', 'd'],
  );
  for (const n of dag.nodes) assert.equal(n.status, 'completed');
  assert.deepEqual(
    dag.edges.map((e) => `${e.from}->${e.to}`).sort(),
    ['a->b', 'a->c', 'b->d', 'c->d'],
  );
  assert.equal(dag.critical_path[0], 'a');
  assert.equal(dag.critical_path.at(-1), 'd');
  assert.equal(dag.critical_path.length, 3);

  const mermaid = await baton.workflowDag(submitted.workflow_id, { format: 'mermaid' });
  assert.equal(typeof mermaid, 'string');
  assert.match(mermaid, /a/);
  const dot = await baton.workflowDag(submitted.workflow_id, { format: 'dot' });
  assert.match(dot, /digraph/);

  const timeline = await baton.workflowTimeline(submitted.workflow_id);
  const steps = new Set(timeline.events.map((e) => e.step_id));
  assert.deepEqual([...steps].sort(), ['a', 'b', 'c', 'd']);

  const listed = [];
  for await (const w of baton.listAllWorkflows({ limit: 1 })) listed.push(w.workflow_id);
  assert.ok(listed.includes(submitted.workflow_id));
});

test('a workflow in YAML', async () => {
  const baton = node.client();
  const yaml = [
    'name: yaml-one',
    'steps:',
    '  - id: only',
    '    tool: baton__echo',
    '    arguments: { said: yes-yaml }',
    '',
  ].join('\n');
  const wf = await baton.submitWorkflow(yaml);
  const result = await baton.waitWorkflow(wf.workflow_id, { timeoutMs: 60_000 });
  const only = result.outputs['only'] as { structuredContent?: Record<string, unknown> };
  assert.deepEqual(only.structuredContent, { said: 'yes-yaml' });
});

test('an invalid definition is refused, naming every problem', async () => {
  const baton = node.client();
  const bad: WorkflowDefinition = {
    name: 'bad',
    steps: [
      { id: 'x', tool: 'nosuch__tool', arguments: {} },
      { id: 'y', tool: 'baton__echo', depends_on: ['ghost'], arguments: {} },
    ],
  };
  await assert.rejects(baton.submitWorkflow(bad), (e: unknown) => {
    assert.ok(e instanceof InvalidRequestError, String(e));
    assert.equal(e.status, 400);
    assert.ok(Array.isArray(e.details), JSON.stringify(e.details));
    const steps = (e.details as Array<{ step?: string }>).map((d) => d.step);
    assert.ok(steps.includes('x') && steps.includes('y'), JSON.stringify(e.details));
    return true;
  });
});

test('a failing step fails the workflow; retry runs the failed step again', async () => {
  const baton = node.client();
  const wf = await baton.submitWorkflow({
    name: 'fails',
    steps: [
      { id: 'ok', tool: 'baton__echo', arguments: { fine: true } },
      {
        id: 'boom',
        tool: 'baton__fail',
        depends_on: ['ok'],
        arguments: { message: 'step exploded', retryable: false },
        retry: { max_attempts: 1 },
      },
    ],
  });
  await assert.rejects(baton.waitWorkflow(wf.workflow_id, { timeoutMs: 60_000 }), (e: unknown) => {
    assert.ok(e instanceof WorkflowFailedError, String(e));
    assert.equal(e.workflowStatus, 'failed');
    assert.equal(e.workflowId, wf.workflow_id);
    assert.match(e.message, /step exploded/);
    return true;
  });
  const okTask = (await baton.getWorkflow(wf.workflow_id)).steps?.find((s) => s.step_id === 'ok')?.task_id;

  const retried = await baton.retryWorkflow(wf.workflow_id);
  assert.equal(retried.workflow_id, wf.workflow_id);
  await assert.rejects(baton.waitWorkflow(wf.workflow_id, { timeoutMs: 60_000 }), WorkflowFailedError);
  const after = await baton.getWorkflow(wf.workflow_id);
  assert.equal(after.status, 'failed');
  // The completed step kept its task and did not run again; the failed one ran twice.
  assert.equal(after.steps?.find((s) => s.step_id === 'ok')?.task_id, okTask);
  const timeline = await baton.workflowTimeline(wf.workflow_id);
  const starts = (step: string) => timeline.events.filter((e) => e.step_id === step && e.kind === 'started').length;
  assert.equal(starts('ok'), 1);
  assert.equal(starts('boom'), 2);
});

test('cancelling a workflow cancels its running step', async () => {
  const baton = node.client();
  const wf = await baton.submitWorkflow({
    name: 'long',
    steps: [{ id: 'nap', tool: 'baton__sleep', arguments: { ms: 60_000, steps: 600 } }],
  });
  const cancelled = await baton.cancelWorkflow(wf.workflow_id);
  assert.equal(cancelled.workflow_id, wf.workflow_id);
  await assert.rejects(baton.waitWorkflow(wf.workflow_id, { timeoutMs: 30_000 }), (e: unknown) => {
    assert.ok(e instanceof WorkflowFailedError, String(e));
    assert.equal(e.workflowStatus, 'cancelled');
    return true;
  });
  const page = await baton.listWorkflows({ status: 'cancelled' });
  assert.ok(page.workflows.some((w) => w.workflow_id === wf.workflow_id));
});
