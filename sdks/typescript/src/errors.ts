import type { TaskError, TaskStatus, WorkflowStatus } from './types.js';

/**
 * What kind of problem an error is, for code that handles categories rather than codes.
 *
 * - `invalid`: the request was wrong (400, 413, 415): fix it, do not retry it.
 * - `auth`: missing or bad credentials (401) or a missing scope (403).
 * - `not_found`: no such task, workflow, server… (404; another principal's look the same).
 * - `conflict`: the thing is in the wrong state (409), e.g. cancelling a finished task.
 * - `rate_limited`: 429; `retryAfterMs` says when to try again.
 * - `unavailable`: the node could not be reached, or answered 502/503/504.
 * - `timeout`: the client gave up (`timeoutMs` of a request, or of a wait).
 * - `task_failed`: a task or workflow that was waited for failed or was cancelled.
 * - `internal`: anything else (500s, answers that are not Baton's).
 */
export type ErrorKind =
  | 'invalid'
  | 'auth'
  | 'not_found'
  | 'conflict'
  | 'rate_limited'
  | 'unavailable'
  | 'timeout'
  | 'task_failed'
  | 'internal';

export interface BatonErrorInit {
  kind: ErrorKind;
  code: string;
  status: number;
  message: string;
  details?: unknown;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * An error from Baton or from reaching it. `code` is the API's machine-readable code
 * (`invalid_argument`, `not_found`, `conflict`, `resource_exhausted`, `unavailable`,
 * `permission_denied`, `unauthenticated`, …), `status` the HTTP status (0 when no answer
 * came), `message` the API's message naming the problem, `details` its structured detail
 * (e.g. every problem of a workflow definition).
 */
export class BatonError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  /** How long the node asks to wait before trying again (`Retry-After`), when it says. */
  readonly retryAfterMs: number | undefined;

  constructor(init: BatonErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.kind = init.kind;
    this.code = init.code;
    this.status = init.status;
    this.details = init.details;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** 400, 413, 415: the request is wrong (an unknown tool, arguments that break its schema…). */
export class InvalidRequestError extends BatonError {}
/** 401 or 403: credentials are missing, bad, or lack a scope. */
export class AuthError extends BatonError {}
/** 404. */
export class NotFoundError extends BatonError {}
/** 409: the task or workflow is not in a state that allows it. */
export class ConflictError extends BatonError {}
/** 429: a rate limit or quota; `retryAfterMs` tells when to try again. */
export class RateLimitedError extends BatonError {}
/** The node could not be reached, or is unavailable (502, 503, 504). */
export class UnavailableError extends BatonError {}
/** The client stopped waiting: a request's `timeoutMs`, or a wait's. */
export class TimeoutError extends BatonError {}

/** A task waited for ended `failed` or `cancelled`. `code` is the task's error code. */
export class TaskFailedError extends BatonError {
  readonly taskId: string;
  readonly taskStatus: TaskStatus;
  /** The task's error as stored (`code`, `message`, `retryable`, `data`), if it has one. */
  readonly taskError: TaskError | null;
  readonly retryable: boolean;

  constructor(taskId: string, taskStatus: TaskStatus, error: TaskError | null | undefined) {
    const code = error?.code ?? (taskStatus === 'cancelled' ? 'cancelled' : 'failed');
    const message = error?.message ?? `the task was ${taskStatus}`;
    super({
      kind: 'task_failed',
      code,
      status: 200,
      message: `task ${taskId} ${taskStatus}: ${message}`,
      details: error?.data,
    });
    this.taskId = taskId;
    this.taskStatus = taskStatus;
    this.taskError = error ?? null;
    this.retryable = error?.retryable ?? false;
  }
}

/** A workflow waited for ended `failed` or `cancelled`. */
export class WorkflowFailedError extends BatonError {
  readonly workflowId: string;
  readonly workflowStatus: WorkflowStatus;
  /** The first failed step's error, as the API reports it. */
  readonly workflowError: unknown;

  constructor(workflowId: string, workflowStatus: WorkflowStatus, error: unknown) {
    const err = isRecord(error) ? error : {};
    const code = typeof err['code'] === 'string' ? err['code'] : workflowStatus;
    const message = typeof err['message'] === 'string' ? err['message'] : `the workflow was ${workflowStatus}`;
    super({
      kind: 'task_failed',
      code,
      status: 200,
      message: `workflow ${workflowId} ${workflowStatus}: ${message}`,
      details: error,
    });
    this.workflowId = workflowId;
    this.workflowStatus = workflowStatus;
    this.workflowError = error;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The error for a non-2xx answer, from its status, headers and body text. */
export function errorFromResponse(status: number, headers: Headers, bodyText: string): BatonError {
  let code = `http_${status}`;
  let message = bodyText.trim() || `HTTP ${status}`;
  let details: unknown;
  try {
    const body: unknown = JSON.parse(bodyText);
    const err = isRecord(body) ? body['error'] : undefined;
    if (isRecord(err)) {
      if (typeof err['code'] === 'string') code = err['code'];
      if (typeof err['message'] === 'string') message = err['message'];
      details = err['details'];
    }
  } catch {
    // not JSON: keep the text
  }
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
  const init: BatonErrorInit = { kind: 'internal', code, status, message, details };
  if (retryAfterMs !== undefined) init.retryAfterMs = retryAfterMs;
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return new InvalidRequestError({ ...init, kind: 'invalid' });
    case 401:
    case 403:
      return new AuthError({ ...init, kind: 'auth' });
    case 404:
      return new NotFoundError({ ...init, kind: 'not_found' });
    case 409:
      return new ConflictError({ ...init, kind: 'conflict' });
    case 429:
      return new RateLimitedError({ ...init, kind: 'rate_limited' });
    case 502:
    case 503:
    case 504:
      return new UnavailableError({ ...init, kind: 'unavailable' });
    default:
      return new BatonError(init);
  }
}
