// A Node project without the DOM library using the built package by its name: the
// published declarations must type-check here (`tsc -p tests/consumer`).
import {
  Baton,
  BatonError,
  TaskFailedError,
  type Task,
  type WatchEvent,
  type WorkflowDefinition,
} from '@baton-dev/client';

export async function usage(): Promise<string> {
  const baton = new Baton({ url: 'http://127.0.0.1:7420', timeoutMs: 5000 });
  const { task_id } = await baton.submit('baton__echo', { a: 1 }, { priority: 'high', idempotency_key: 'k' });
  const events: WatchEvent[] = [];
  for await (const ev of baton.watch(task_id)) events.push(ev);
  const task: Task = await baton.get(task_id);
  const wf: WorkflowDefinition = { name: 'w', steps: [{ id: 'a', tool: 'baton__echo', arguments: {} }] };
  const submitted = await baton.submitWorkflow(wf);
  const dag = await baton.workflowDag(submitted.workflow_id);
  const dot: string = await baton.workflowDag(submitted.workflow_id, { format: 'dot' });
  try {
    await baton.wait(task_id, { timeoutMs: 1000 });
  } catch (e) {
    if (e instanceof TaskFailedError) return e.code;
    if (e instanceof BatonError) return `${e.kind} ${e.status}`;
  }
  return `${task.status} ${dag.critical_path.join(',')} ${dot.length}`;
}
