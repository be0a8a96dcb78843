import {
  BatonError,
  TaskFailedError,
  TimeoutError,
  UnavailableError,
  WorkflowFailedError,
  errorFromResponse,
} from './errors.js';
import { decodeBody, parseSse, type SseMessage } from './sse.js';
import type {
  Accepted,
  BatchAccepted,
  CancelAnswer,
  ListTasksQuery,
  ListWorkflowsQuery,
  LogLine,
  LogPage,
  ServerConfig,
  ServerList,
  ServerRemoved,
  ServerStatus,
  SubmitRequest,
  Task,
  TaskEvent,
  TaskPage,
  TaskResult,
  TaskUpdate,
  ToolList,
  WatchEvent,
  Workflow,
  WorkflowDag,
  WorkflowDefinition,
  WorkflowPage,
  WorkflowResult,
  WorkflowTimeline,
} from './types.js';

/** The address a client uses when given none and `BATON_URL` is unset. */
export const DEFAULT_URL = 'http://127.0.0.1:7420';
/** How long one request may take by default, long-polls excepted (they add their wait). */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** The longest a single long-poll asks the node to wait, in seconds (the node allows 300). */
const LONG_POLL_SECONDS = 60;

export interface BatonOptions {
  /** The node's base URL; default `BATON_URL` (in Node), else `http://127.0.0.1:7420`. */
  url?: string;
  /** An API key or JWT, sent as `Authorization: Bearer …`; default `BATON_TOKEN` (in Node). */
  apiKey?: string;
  /** How long one request may take, in ms (default 30 000); long-polls add their wait. */
  timeoutMs?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof globalThis.fetch;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/** Options every call takes. */
export interface RequestOptions {
  /** Aborts the call; it then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** This call's timeout, in ms, instead of the client's. */
  timeoutMs?: number;
}

/** Everything `POST /v1/tasks` takes besides the tool and its arguments. */
export type SubmitOptions = Omit<SubmitRequest, 'tool' | 'arguments'> & RequestOptions;

export interface WaitOptions {
  /** Give up after this long (ms) with a `TimeoutError`; default: wait as long as it takes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface WatchOptions {
  /** Include the tool's log lines as `log` events (default true). */
  logs?: boolean;
  /** Resume after this event sequence number (events up to it are not sent again). */
  lastEventId?: number;
  /** Resume log lines after this `seq`. */
  logsAfter?: number;
  /** Times to reconnect in a row when the stream breaks before the task ends (default 5). */
  reconnects?: number;
  signal?: AbortSignal;
}

export interface LogsOptions extends RequestOptions {
  /** Lines after this `seq` (`next_after` of the previous page). */
  after?: number;
  /** At most this many lines, 1 to 1000. */
  limit?: number;
  /** Wait up to this many seconds for a line while the task runs. */
  wait?: number;
}

export interface ResultOptions extends RequestOptions {
  /** Wait up to this many seconds (at most 300) for the task to finish. */
  wait?: number;
}

/** The formats of a workflow's graph besides JSON. */
export type DagTextFormat = 'dot' | 'mermaid';

type Query = Record<string, string | number | boolean | null | undefined>;

interface Call extends RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  /** Extra time allowed on top of the timeout (a long-poll's wait), in ms. */
  extraMs?: number;
}

interface Answer<T> {
  status: number;
  body: T;
}

const FINAL_TASK: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

function envVar(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = proc?.env?.[name];
  return value === undefined || value === '' ? undefined : value;
}

const enc = encodeURIComponent;

/**
 * A client of a Baton node's REST API.
 *
 * ```ts
 * const baton = new Baton();                     // BATON_URL or http://127.0.0.1:7420
 * const { task_id } = await baton.submit('baton__echo', { hello: 'world' });
 * const done = await baton.wait(task_id);         // throws TaskFailedError if it failed
 * ```
 */
export class Baton {
  /** The node's base URL, without a trailing slash. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof globalThis.fetch;
  readonly #headers: Record<string, string>;

  constructor(options: BatonOptions = {}) {
    this.url = (options.url ?? envVar('BATON_URL') ?? DEFAULT_URL).replace(/\/+$/, '');
    this.#apiKey = options.apiKey ?? envVar('BATON_TOKEN');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') {
      throw new TypeError('no fetch: pass options.fetch, or use Node 18+ or a browser');
    }
    this.#fetch = f.bind(globalThis);
    this.#headers = { ...(options.headers ?? {}) };
  }

  // ---------------------------------------------------------------- tasks

  /** Submits a tool call as a task; resolves once the task is stored (`202`). */
  async submit(tool: string, args: Record<string, unknown> = {}, options: SubmitOptions = {}): Promise<Accepted> {
    const { signal, timeoutMs, ...fields } = options;
    const body: SubmitRequest = { ...fields, tool, arguments: args };
    const res = await this.#json<Accepted>('POST', '/v1/tasks', { body, signal, timeoutMs });
    return res.body;
  }

  /** Submits several tasks at once, all or nothing. */
  async submitBatch(tasks: SubmitRequest[], options: RequestOptions = {}): Promise<BatchAccepted> {
    return (await this.#json<BatchAccepted>('POST', '/v1/tasks/batch', { ...options, body: { tasks } })).body;
  }

  /** Submits a tool call and waits for its result; `TaskFailedError` if it fails. */
  async call(
    tool: string,
    args: Record<string, unknown> = {},
    options: SubmitOptions & { waitTimeoutMs?: number } = {},
  ): Promise<TaskResult> {
    const { waitTimeoutMs, ...submit } = options;
    const accepted = await this.submit(tool, args, submit);
    const wait: WaitOptions = {};
    if (waitTimeoutMs !== undefined) wait.timeoutMs = waitTimeoutMs;
    if (options.signal) wait.signal = options.signal;
    return this.wait(accepted.task_id, wait);
  }

  /** A task: status, progress, result or error, links. */
  async get(id: string, options: RequestOptions = {}): Promise<Task> {
    return (await this.#json<Task>('GET', `/v1/tasks/${enc(id)}`, options)).body;
  }

  /** One page of the caller's tasks, newest first; pass `next_cursor` as `cursor` for the next. */
  async list(query: ListTasksQuery = {}, options: RequestOptions = {}): Promise<TaskPage> {
    return (await this.#json<TaskPage>('GET', '/v1/tasks', { ...options, query })).body;
  }

  /** Every task matching `query`, newest first, page after page (`limit` is the page size). */
  async *listAll(query: ListTasksQuery = {}, options: RequestOptions = {}): AsyncGenerator<Task> {
    let cursor = query.cursor ?? undefined;
    for (;;) {
      const page = await this.list({ ...query, cursor }, options);
      yield* page.tasks;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /** Cancels a task (and the tasks it created). `ConflictError` if it already finished. */
  async cancel(id: string, options: RequestOptions = {}): Promise<CancelAnswer> {
    return (await this.#json<CancelAnswer>('DELETE', `/v1/tasks/${enc(id)}`, options)).body;
  }

  /** Runs a failed or cancelled task again. */
  async retry(id: string, options: RequestOptions = {}): Promise<Task> {
    return (await this.#json<Task>('POST', `/v1/tasks/${enc(id)}/retry`, options)).body;
  }

  /** Changes a pending task's priority or when it is due. */
  async update(id: string, update: TaskUpdate, options: RequestOptions = {}): Promise<Task> {
    return (await this.#json<Task>('PATCH', `/v1/tasks/${enc(id)}`, { ...options, body: update })).body;
  }

  /**
   * A task's outcome as it is now, or after waiting up to `wait` seconds for it to
   * finish; `finished` tells which. Never throws for a failed task (see `wait`).
   */
  async result(id: string, options: ResultOptions = {}): Promise<TaskResult> {
    const { wait, ...rest } = options;
    const call: Call = { ...rest };
    if (wait !== undefined) {
      call.query = { wait };
      call.extraMs = wait * 1000;
    }
    return (await this.#json<TaskResult>('GET', `/v1/tasks/${enc(id)}/result`, call)).body;
  }

  /**
   * Waits (long-polling the result) until the task is over. Resolves with the outcome
   * when it completed; rejects with `TaskFailedError` when it failed or was cancelled,
   * and with `TimeoutError` when `timeoutMs` passes first.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<TaskResult> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    for (;;) {
      const left = deadline === undefined ? LONG_POLL_SECONDS * 1000 : deadline - Date.now();
      const seconds = Math.max(0, Math.min(LONG_POLL_SECONDS, Math.floor(left / 1000)));
      const call: ResultOptions = { wait: seconds };
      if (options.signal) call.signal = options.signal;
      const asked = Date.now();
      const res = await this.result(id, call);
      if (res.finished) {
        if (res.status === 'completed') return res;
        throw new TaskFailedError(id, res.status, res.error);
      }
      if (deadline !== undefined && Date.now() >= deadline) {
        throw new TimeoutError({
          kind: 'timeout',
          code: 'wait_timeout',
          status: 0,
          message: `task ${id} is still ${res.status} after ${options.timeoutMs} ms`,
        });
      }
      // A long-poll that came back early without an end (or a deadline under a second)
      // is not repeated at once.
      if (seconds === 0 || Date.now() - asked < (seconds * 1000) / 2) {
        await sleep(Math.min(250, Math.max(0, left)), options.signal);
      }
    }
  }

  /**
   * The task's events as they happen (`GET /v1/tasks/{id}/events`): every state change
   * and progress report, then the final event (carrying the result or error), after
   * which the iteration ends. Log lines come as `{kind: 'log', line}` unless `logs` is
   * false. A stream that breaks before the end is resumed where it stopped, and a task
   * that was retried after an earlier final event is followed through its new run.
   */
  async *watch(id: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent> {
    let lastEventId = options.lastEventId;
    let logsAfter = options.logsAfter;
    const logs = options.logs ?? true;
    const maxReconnects = options.reconnects ?? 5;
    const signal = options.signal;
    let failures = 0;
    for (;;) {
      const query: Query = { logs };
      if (logs && logsAfter !== undefined) query['logs_after'] = logsAfter;
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
      // Aborted when the caller's signal fires, and when the iteration stops early.
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal?.reason);
      if (signal?.aborted) throw signal.reason;
      signal?.addEventListener('abort', onAbort, { once: true });
      let broken: unknown;
      try {
        const res = await this.#send(
          'GET',
          `/v1/tasks/${enc(id)}/events`,
          { headers, query, signal: controller.signal, streaming: true },
          async (r) => r,
        );
        if (!res.body) throw new UnavailableError(unavailable('the event stream has no body'));
        const messages = parseSse(decodeBody(res.body));
        for (;;) {
          let next: IteratorResult<SseMessage>;
          try {
            next = await messages.next();
          } catch (e) {
            if (signal?.aborted) throw signal.reason;
            broken = e; // the connection broke: resume below
            break;
          }
          if (next.done) break;
          const msg = next.value;
          if (msg.event === 'error') {
            throw new BatonError({ kind: 'internal', code: 'stream_error', status: res.status, message: msg.data });
          }
          failures = 0;
          if (msg.event === 'log') {
            const line = JSON.parse(msg.data) as LogLine;
            logsAfter = line.seq;
            yield { kind: 'log', line };
            continue;
          }
          const event = JSON.parse(msg.data) as TaskEvent;
          lastEventId = msg.hasId && msg.id !== undefined ? Number(msg.id) : event.seq;
          yield event;
          // The stream ends at a final event, but a replayed one may be from before a
          // retry: the watch ends only when the task is over now.
          if (FINAL_TASK.has(event.status) && (await this.#isOver(id, signal))) return;
        }
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (!(e instanceof UnavailableError || e instanceof TimeoutError)) throw e;
        broken = e;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        controller.abort();
      }
      // The stream ended or broke before the final event: resume after the last one.
      failures++;
      if (failures > maxReconnects) {
        throw new UnavailableError({
          ...unavailable(`the event stream of task ${id} ended early ${failures} times in a row`),
          cause: broken,
        });
      }
      await sleep(Math.min(5000, 100 * 2 ** failures), signal);
    }
  }

  /** Whether the task is in a final state now (true when that cannot be read). */
  async #isOver(id: string, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      const options: RequestOptions = {};
      if (signal) options.signal = signal;
      return FINAL_TASK.has((await this.get(id, options)).status);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      return true;
    }
  }

  /** Answers an `input_required` task: `responses` keyed like its `input_requests`. */
  async respond(id: string, responses: Record<string, unknown>, options: RequestOptions = {}): Promise<Task> {
    return (await this.#json<Task>('POST', `/v1/tasks/${enc(id)}/input`, { ...options, body: { responses } })).body;
  }

  /** What the task's tool logged, oldest first, a page at a time. */
  async logs(id: string, options: LogsOptions = {}): Promise<LogPage> {
    const { after, limit, wait, ...rest } = options;
    const call: Call = { ...rest, query: { after, limit, wait } };
    if (wait !== undefined) call.extraMs = wait * 1000;
    return (await this.#json<LogPage>('GET', `/v1/tasks/${enc(id)}/logs`, call)).body;
  }

  // ------------------------------------------------------------ workflows

  /**
   * Submits a workflow: a definition object (sent as JSON) or YAML text. Invalid
   * definitions reject with `InvalidRequestError` whose `details` lists every problem
   * (`{step, message}`).
   */
  async submitWorkflow(definition: WorkflowDefinition | string, options: RequestOptions = {}): Promise<Workflow> {
    const call: Call & { raw?: string } = { ...options };
    if (typeof definition === 'string') {
      call.raw = definition;
      call.headers = { 'content-type': 'application/yaml' };
    } else {
      call.body = definition;
    }
    return (await this.#json<Workflow>('POST', '/v1/workflows', call)).body;
  }

  /** A workflow: status, progress, each step's state. */
  async getWorkflow(id: string, options: RequestOptions = {}): Promise<Workflow> {
    return (await this.#json<Workflow>('GET', `/v1/workflows/${enc(id)}`, options)).body;
  }

  /** One page of the caller's workflows, newest first. */
  async listWorkflows(query: ListWorkflowsQuery = {}, options: RequestOptions = {}): Promise<WorkflowPage> {
    return (await this.#json<WorkflowPage>('GET', '/v1/workflows', { ...options, query })).body;
  }

  /** Every workflow matching `query`, page after page. */
  async *listAllWorkflows(query: ListWorkflowsQuery = {}, options: RequestOptions = {}): AsyncGenerator<Workflow> {
    let cursor = query.cursor ?? undefined;
    for (;;) {
      const page = await this.listWorkflows({ ...query, cursor }, options);
      yield* page.workflows;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /** The results of the workflow's final steps, now or after waiting up to `wait` seconds. */
  async workflowResult(id: string, options: ResultOptions = {}): Promise<WorkflowResult> {
    const { wait, ...rest } = options;
    const call: Call = { ...rest };
    if (wait !== undefined) {
      call.query = { wait };
      call.extraMs = wait * 1000;
    }
    return (await this.#json<WorkflowResult>('GET', `/v1/workflows/${enc(id)}/result`, call)).body;
  }

  /**
   * Waits until the workflow is over. Resolves with its result when it completed;
   * rejects with `WorkflowFailedError` when it failed or was cancelled, `TimeoutError`
   * when `timeoutMs` passes first.
   */
  async waitWorkflow(id: string, options: WaitOptions = {}): Promise<WorkflowResult> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    for (;;) {
      const left = deadline === undefined ? LONG_POLL_SECONDS * 1000 : deadline - Date.now();
      const seconds = Math.max(0, Math.min(LONG_POLL_SECONDS, Math.floor(left / 1000)));
      const call: ResultOptions = { wait: seconds };
      if (options.signal) call.signal = options.signal;
      const asked = Date.now();
      const res = await this.workflowResult(id, call);
      if (res.status === 'completed') return res;
      if (res.status !== 'running') throw new WorkflowFailedError(id, res.status, res.error);
      if (deadline !== undefined && Date.now() >= deadline) {
        throw new TimeoutError({
          kind: 'timeout',
          code: 'wait_timeout',
          status: 0,
          message: `workflow ${id} is still running after ${options.timeoutMs} ms`,
        });
      }
      // A long-poll that came back early without an end (or a deadline under a second)
      // is not repeated at once.
      if (seconds === 0 || Date.now() - asked < (seconds * 1000) / 2) {
        await sleep(Math.min(250, Math.max(0, left)), options.signal);
      }
    }
  }

  /** Cancels a workflow: running steps are cancelled, nothing more starts. */
  async cancelWorkflow(id: string, options: RequestOptions = {}): Promise<Workflow> {
    return (await this.#json<Workflow>('DELETE', `/v1/workflows/${enc(id)}`, options)).body;
  }

  /** Runs a failed or cancelled workflow again from its failed steps. */
  async retryWorkflow(id: string, options: RequestOptions = {}): Promise<Workflow> {
    return (await this.#json<Workflow>('POST', `/v1/workflows/${enc(id)}/retry`, options)).body;
  }

  /** The workflow's graph with each step's state and the critical path (JSON), or as DOT / Mermaid text. */
  workflowDag(id: string, options?: RequestOptions & { format?: 'json' }): Promise<WorkflowDag>;
  workflowDag(id: string, options: RequestOptions & { format: DagTextFormat }): Promise<string>;
  async workflowDag(
    id: string,
    options: RequestOptions & { format?: 'json' | DagTextFormat } = {},
  ): Promise<WorkflowDag | string> {
    const { format = 'json', ...rest } = options;
    const path = `/v1/workflows/${enc(id)}/dag`;
    if (format === 'json') return (await this.#json<WorkflowDag>('GET', path, { ...rest, query: { format } })).body;
    return (await this.#text('GET', path, { ...rest, query: { format } })).text;
  }

  /** Every step's task events, in order. */
  async workflowTimeline(id: string, options: RequestOptions = {}): Promise<WorkflowTimeline> {
    return (await this.#json<WorkflowTimeline>('GET', `/v1/workflows/${enc(id)}/timeline`, options)).body;
  }

  // ---------------------------------------------------- servers and tools

  /** The MCP servers with health and load (only those with `tag`, if given). */
  async servers(options: RequestOptions & { tag?: string } = {}): Promise<ServerStatus[]> {
    const { tag, ...rest } = options;
    return (await this.#json<ServerList>('GET', '/v1/servers', { ...rest, query: { tag } })).body.servers;
  }

  /** One MCP server: health, protocol version, tools, load. */
  async getServer(name: string, options: RequestOptions = {}): Promise<ServerStatus> {
    return (await this.#json<ServerStatus>('GET', `/v1/servers/${enc(name)}`, options)).body;
  }

  /** Registers an MCP server (stored; every node starts it); resolves once it answered. */
  async addServer(config: ServerConfig, options: RequestOptions = {}): Promise<ServerStatus> {
    return (await this.#json<ServerStatus>('POST', '/v1/servers', { ...options, body: config })).body;
  }

  /** Stops and forgets a server registered at runtime. */
  async removeServer(name: string, options: RequestOptions = {}): Promise<ServerRemoved> {
    return (await this.#json<ServerRemoved>('DELETE', `/v1/servers/${enc(name)}`, options)).body;
  }

  /** The tool catalog: every tool's qualified name, server and input schema. */
  async tools(options: RequestOptions = {}): Promise<ToolList['tools']> {
    return (await this.#json<ToolList>('GET', '/v1/tools', options)).body.tools;
  }

  // ------------------------------------------------------------- plumbing

  async #json<T>(method: string, path: string, call: Call & { raw?: string }): Promise<Answer<T>> {
    const res = await this.#text(method, path, call);
    try {
      return { status: res.status, body: JSON.parse(res.text) as T };
    } catch (e) {
      throw new BatonError({
        kind: 'internal',
        code: 'bad_response',
        status: res.status,
        message: `${method} ${path} answered ${res.status} with a body that is not JSON: ${res.text.slice(0, 200)}`,
        cause: e,
      });
    }
  }

  /** Sends a request and reads the whole body, under the timeout. */
  async #text(method: string, path: string, call: Call & { raw?: string }): Promise<{ status: number; text: string }> {
    return this.#send(method, path, call, async (res) => ({ status: res.status, text: await res.text() }));
  }

  /**
   * Sends a request; a 2xx answer goes to `read` (under the timeout unless `streaming`),
   * anything else rejects with a `BatonError`.
   */
  async #send<R>(
    method: string,
    path: string,
    call: Call & { raw?: string; streaming?: boolean },
    read: (res: Response) => Promise<R>,
  ): Promise<R> {
    const url = new URL(this.url + path);
    for (const [k, v] of Object.entries(call.query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { accept: 'application/json', ...this.#headers };
    if (this.#apiKey) headers['authorization'] = `Bearer ${this.#apiKey}`;
    let body: string | undefined;
    if (call.raw !== undefined) {
      body = call.raw;
    } else if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers['content-type'] = 'application/json';
    }
    Object.assign(headers, call.headers ?? {});

    const timeoutMs = (call.timeoutMs ?? this.timeoutMs) + (call.extraMs ?? 0);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(call.signal?.reason);
    if (call.signal?.aborted) onAbort();
    call.signal?.addEventListener('abort', onAbort, { once: true });
    const init: RequestInit = { method, headers, signal: controller.signal };
    if (body !== undefined) init.body = body;
    try {
      let res: Response;
      try {
        res = await this.#fetch(url, init);
      } catch (e) {
        throw this.#transportError(e, method, url, timedOut, timeoutMs, call.signal);
      }
      if (!res.ok) {
        const text = await res.text().catch(() => '');
        throw errorFromResponse(res.status, res.headers, text);
      }
      // A stream's timeout covers only the wait for its headers.
      if (call.streaming) clearTimeout(timer);
      try {
        return await read(res);
      } catch (e) {
        throw this.#transportError(e, method, url, timedOut, timeoutMs, call.signal);
      }
    } finally {
      clearTimeout(timer);
      call.signal?.removeEventListener('abort', onAbort);
    }
  }

  #transportError(
    e: unknown,
    method: string,
    url: URL,
    timedOut: boolean,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): unknown {
    if (signal?.aborted) return signal.reason;
    if (timedOut) {
      return new TimeoutError({
        kind: 'timeout',
        code: 'timeout',
        status: 0,
        message: `${method} ${url.pathname} got no answer within ${timeoutMs} ms`,
        cause: e,
      });
    }
    if (e instanceof BatonError) return e;
    const reason = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
    return new UnavailableError({
      ...unavailable(`cannot reach ${this.url} (${method} ${url.pathname}): ${reason}`),
      cause: e,
    });
  }
}

function unavailable(message: string) {
  return { kind: 'unavailable' as const, code: 'unreachable', status: 0, message };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
