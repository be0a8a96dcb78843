export { Baton, DEFAULT_TIMEOUT_MS, DEFAULT_URL } from './client.js';
export type {
  BatonOptions,
  DagTextFormat,
  LogsOptions,
  RequestOptions,
  ResultOptions,
  SubmitOptions,
  WaitOptions,
  WatchOptions,
} from './client.js';
export {
  AuthError,
  BatonError,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  RateLimitedError,
  TaskFailedError,
  TimeoutError,
  UnavailableError,
  WorkflowFailedError,
} from './errors.js';
export type { BatonErrorInit, ErrorKind } from './errors.js';
export { parseSse } from './sse.js';
export type { SseMessage } from './sse.js';
export type * from './types.js';
