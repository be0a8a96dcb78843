// Compile-time checks (tsc fails on them) that the client's public types are the API's
// generated ones, plus a run-time test so the file counts as a test.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type {
  Accepted,
  Baton,
  CancelAnswer,
  ErrorBody,
  LogPage,
  ResultView,
  SubmitRequest,
  Task,
  TaskPage,
  Workflow,
  WorkflowDefinition,
  WorkflowResult,
  components,
  operations,
} from '@baton-dev/client';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
type NotNever<T> = [T] extends [never] ? false : true;
type Json<Op extends keyof operations, S extends keyof operations[Op]['responses']> =
  operations[Op]['responses'][S] extends { content: { 'application/json': infer T } } ? T : never;
type Awaited2<F> = F extends (...a: never[]) => Promise<infer R> ? R : never;

export type Checks = [
  Expect<Equal<Task, components['schemas']['Linked']>>,
  Expect<Equal<Accepted, components['schemas']['Accepted']>>,
  Expect<Equal<SubmitRequest, components['schemas']['SubmitRequest']>>,
  Expect<Equal<ResultView, components['schemas']['ResultView']>>,
  Expect<Equal<TaskPage, components['schemas']['TaskList']>>,
  Expect<Equal<CancelAnswer, components['schemas']['CancelAnswer']>>,
  Expect<Equal<LogPage, components['schemas']['LogPage']>>,
  Expect<Equal<Workflow, components['schemas']['LinkedWorkflow']>>,
  Expect<Equal<WorkflowDefinition, components['schemas']['Definition']>>,
  Expect<Equal<WorkflowResult, components['schemas']['WorkflowResult']>>,
  Expect<Equal<ErrorBody, components['schemas']['ErrorBody']>>,
  Expect<NotNever<WorkflowDefinition>>,
  // The methods answer with what their operations answer.
  Expect<Equal<Awaited2<Baton['get']>, Json<'getTask', 200>>>,
  Expect<Equal<Awaited2<Baton['submit']>, Json<'submitTask', 202>>>,
  Expect<Equal<Awaited2<Baton['list']>, Json<'listTasks', 200>>>,
  Expect<Equal<Awaited2<Baton['cancel']>, Json<'cancelTask', 202>>>,
  Expect<Equal<Awaited2<Baton['retry']>, Json<'retryTask', 202>>>,
  Expect<Equal<Awaited2<Baton['respond']>, Json<'answerTaskInput', 202>>>,
  Expect<Equal<Awaited2<Baton['logs']>, Json<'taskLogs', 200>>>,
  Expect<Equal<Awaited2<Baton['submitWorkflow']>, Json<'submitWorkflow', 202>>>,
  Expect<Equal<Awaited2<Baton['getWorkflow']>, Json<'getWorkflow', 200>>>,
  Expect<Equal<Awaited2<Baton['cancelWorkflow']>, Json<'cancelWorkflow', 200>>>,
  Expect<Equal<Awaited2<Baton['retryWorkflow']>, Json<'retryWorkflow', 202>>>,
  Expect<Equal<Awaited2<Baton['listWorkflows']>, Json<'listWorkflows', 200>>>,
  Expect<Equal<Awaited2<Baton['workflowResult']>, Json<'getWorkflowResult', 200>>>,
  Expect<Equal<Awaited2<Baton['servers']>, Json<'listServers', 200>['servers']>>,
  Expect<Equal<Awaited2<Baton['tools']>, Json<'listTools', 200>['tools']>>,
];

test('the type checks above compile (tsc --noEmit runs them)', () => {
  const ok: Checks extends true[] ? true : false = true;
  assert.equal(ok, true);
});
