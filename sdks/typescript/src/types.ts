// The client's public types, built from the API types generated from /openapi.json.
import type { components, operations } from './generated/openapi.js';

export type { components, operations, paths } from './generated/openapi.js';

type Schemas = components['schemas'];

/** The JSON an operation answers with `status`. */
export type ResponseOf<
  Op extends keyof operations,
  Status extends keyof operations[Op]['responses'],
> = operations[Op]['responses'][Status] extends { content: { 'application/json': infer T } } ? T : never;

/** The JSON body an operation takes. */
export type RequestOf<Op extends keyof operations> = operations[Op] extends {
  requestBody: { content: { 'application/json': infer T } };
}
  ? T
  : never;

/** The query parameters an operation takes. */
export type QueryOf<Op extends keyof operations> = NonNullable<operations[Op]['parameters']['query']>;

/** The body of every error answer: `{error: {code, message, details?}}`. */
export type ErrorBody = ResponseOf<'getTask', 'default'>;

/** `pending`, `running`, `input_required`, `completed`, `failed` or `cancelled`. */
export type TaskStatus = Schemas['TaskStatus'];
/** `low`, `normal`, `high`, or 0 to 100 (higher runs first). */
export type Priority = Schemas['Priority'];
/** Why a task failed: `code` for machines, `message` for people. */
export type TaskError = Schemas['TaskError'];
/** A task as `GET /v1/tasks/{id}` shows it, with its links. */
export type Task = ResponseOf<'getTask', 200>;
/** What `POST /v1/tasks` takes. */
export type SubmitRequest = RequestOf<'submitTask'>;
/** The answer to a submission (`202`). */
export type Accepted = ResponseOf<'submitTask', 202>;
/** What `POST /v1/tasks/batch` takes. */
export type BatchRequest = RequestOf<'submitTasks'>;
/** The answer to a batch submission. */
export type BatchAccepted = ResponseOf<'submitTasks', 202>;
/** A task's outcome (`GET /v1/tasks/{id}/result`); `finished` is false while it runs. */
export type ResultView = ResponseOf<'getTaskResult', 200> | ResponseOf<'getTaskResult', 202>;
/** A page of tasks; `next_cursor` is absent on the last. */
export type TaskPage = ResponseOf<'listTasks', 200>;
/** Query parameters of `GET /v1/tasks`. */
export type ListTasksQuery = QueryOf<'listTasks'>;
/** The answer to a cancellation. */
export type CancelAnswer = ResponseOf<'cancelTask', 202>;
/** A task after a retry. */
export type RetriedTask = ResponseOf<'retryTask', 202>;
/** What can change on a pending task (`PATCH /v1/tasks/{id}`). */
export type TaskUpdate = RequestOf<'updateTask'>;
/** What `POST /v1/tasks/{id}/input` takes. */
export type InputAnswer = RequestOf<'answerTaskInput'>;
/** A task after its input was stored. */
export type InputAccepted = ResponseOf<'answerTaskInput', 202>;
/** A page of a task's log. */
export type LogPage = ResponseOf<'taskLogs', 200>;
/** Query parameters of `GET /v1/tasks/{id}/logs`. */
export type LogsQuery = QueryOf<'taskLogs'>;
/** One line a task's tool logged. */
export type LogLine = Schemas['LogLine'];
/** The kind of a task event (`created`, `started`, `progress`, …, `completed`). */
export type EventKind = Schemas['EventKind'];

/** A workflow definition, as `POST /v1/workflows` takes it. */
export type WorkflowDefinition = RequestOf<'submitWorkflow'>;
/** One step of a workflow definition. */
export type WorkflowStep = Schemas['Step'];
/** A workflow with its steps and links. */
export type Workflow = ResponseOf<'getWorkflow', 200>;
/** `running`, `completed`, `failed` or `cancelled`. */
export type WorkflowStatus = Schemas['WorkflowStatus'];
/** One step of a workflow as the API shows it. */
export type WorkflowStepView = Schemas['StepView'];
/** The results of a workflow's final steps by step id (`outputs`). */
export type WorkflowResult = ResponseOf<'getWorkflowResult', 200> | ResponseOf<'getWorkflowResult', 202>;
/** A page of workflows. */
export type WorkflowPage = ResponseOf<'listWorkflows', 200>;
/** Query parameters of `GET /v1/workflows`. */
export type ListWorkflowsQuery = QueryOf<'listWorkflows'>;
/** Every step's task events, in order. */
export type WorkflowTimeline = ResponseOf<'getWorkflowTimeline', 200>;

/** The MCP servers with health and load, and their groups. */
export type ServerList = ResponseOf<'listServers', 200>;
/** One MCP server. */
export type ServerStatus = ResponseOf<'getServer', 200>;
/** What `POST /v1/servers` takes: an MCP server to register (stdio `command` or HTTP `url`). */
export type ServerConfig = RequestOf<'addServer'>;
/** The answer to removing a server. */
export type ServerRemoved = ResponseOf<'removeServer', 200>;
/** The tool catalog. */
export type ToolList = ResponseOf<'listTools', 200>;
/** One tool: qualified name, server, input schema. */
export type Tool = ToolList['tools'][number];

/**
 * An MCP `CallToolResult`, what a completed task's `result` holds (the API declares it as
 * any JSON; these are the fields MCP defines).
 */
export interface CallToolResult {
  content?: Array<{ type: string; text?: string; [key: string]: unknown }>;
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  [key: string]: unknown;
}

/** A task's outcome with its result typed as a `CallToolResult`. */
export type TaskResult = Omit<ResultView, 'result'> & { result?: CallToolResult };

/**
 * One event of a task's stream (`GET /v1/tasks/{id}/events`): the fields of a stored
 * task event. The final one (`status` completed, failed or cancelled) carries the
 * task's `result` or `error`.
 */
export type TaskEvent = Omit<Schemas['TimelineEntry'], 'step_id'> & {
  result?: CallToolResult;
  error?: TaskError;
};

/** A line the task's tool logged, as it came on the event stream. */
export interface LogEvent {
  kind: 'log';
  line: LogLine;
}

/** What `watch` yields: task events, and log lines unless `logs: false`. */
export type WatchEvent = TaskEvent | LogEvent;

/** The JSON form of a workflow's graph (`GET /v1/workflows/{id}/dag?format=json`). */
export interface WorkflowDag {
  /** Steps in definition order, each with its state and whether it is on the critical path. */
  nodes: Array<{
    id: string;
    tool: string;
    status: Schemas['StepState'];
    duration_ms: number | null;
    estimated: boolean;
    critical: boolean;
  }>;
  edges: Array<{ from: string; to: string; critical: boolean }>;
  critical_path: string[];
  critical_path_ms: number;
}
