// Baton's fixture MCP server for the official MCP conformance suite
// (@modelcontextprotocol/conformance, pinned in package.json beside this file).
//
//   node fixture.mjs                 serve one client over stdio (the default), e.g. as
//                                    an upstream behind Baton
//   node fixture.mjs --http PORT     serve Streamable HTTP at http://127.0.0.1:PORT/mcp,
//                                    with sessions, SSE responses, resumable streams and
//                                    DNS-rebinding protection; PORT 0 takes a free port.
//                                    Prints the endpoint's URL alone on a line on stdout
//                                    once it listens.
//
// It implements what the suite's server scenarios ask of a server under test (protocol
// 2025-11-25): the test_* tools, resources and prompts, completion, logging and
// subscriptions. Written for Baton from the scenarios' requirements, on the official
// TypeScript SDK's low-level Server, so every result is exactly what is written here.
//
// It also offers what the 2026-07-28 scenarios call (server-stateless,
// input-required-result-*, the tasks extension's, http-custom-header-server-validation),
// still as a 2025-11-25 server: they are meant to be run through a gateway that speaks
// 2026-07-28 to the suite (Baton). A tool that needs input asks for it the 2025-11-25 way,
// with elicitation/create, sampling/createMessage or roots/list on the call's own stream,
// waits for the answer and reports what it got; the gateway turns those requests into
// input rounds (resultType "input_required", inputRequests, requestState) and the client's
// inputResponses back into their answers. The request keys, requestState and its
// integrity, per-request capabilities and tasks are the gateway's.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListRootsResultSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  isInitializeRequest,
} from '@modelcontextprotocol/sdk/types.js';

// ---------------------------------------------------------------------------------------
// Content

// A 1x1 PNG.
const PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

// A short mono 8 kHz 16-bit PCM WAV of silence, built byte by byte.
function silentWav(samples = 80) {
  const dataBytes = samples * 2;
  const b = Buffer.alloc(44 + dataBytes);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + dataBytes, 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(16, 16); // fmt chunk size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // channels
  b.writeUInt32LE(8000, 24); // sample rate
  b.writeUInt32LE(8000 * 2, 28); // byte rate
  b.writeUInt16LE(2, 32); // block align
  b.writeUInt16LE(16, 34); // bits per sample
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(dataBytes, 40);
  return b.toString('base64');
}
const WAV_BASE64 = silentWav();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ type: 'text', text: t });
const noArgs = { type: 'object', properties: {} };
const TASK_OPTIONAL = { taskSupport: 'optional' };

// ---------------------------------------------------------------------------------------
// Tools

const TOOLS = [
  { name: 'test_simple_text', description: 'Returns one text item.', inputSchema: noArgs },
  { name: 'test_image_content', description: 'Returns one PNG image item.', inputSchema: noArgs },
  { name: 'test_audio_content', description: 'Returns one WAV audio item.', inputSchema: noArgs },
  {
    name: 'test_embedded_resource',
    description: 'Returns one embedded text resource.',
    inputSchema: noArgs,
  },
  {
    name: 'test_multiple_content_types',
    description: 'Returns a text, an image and an embedded resource item.',
    inputSchema: noArgs,
  },
  {
    name: 'test_tool_with_logging',
    description: 'Sends three info log messages while it runs.',
    inputSchema: noArgs,
  },
  {
    name: 'test_error_handling',
    description: 'Always fails, as a tool result with isError set.',
    inputSchema: noArgs,
  },
  {
    name: 'test_tool_with_progress',
    description: 'Reports progress 0, 50 and 100 of 100 while it runs.',
    inputSchema: noArgs,
  },
  {
    name: 'test_sampling',
    description: "Asks the client's model (sampling/createMessage) and returns its answer.",
    inputSchema: {
      type: 'object',
      properties: { prompt: { type: 'string', description: 'What to ask the model' } },
      required: ['prompt'],
    },
  },
  {
    name: 'test_elicitation',
    description: 'Asks the user (elicitation/create) for a username and email.',
    inputSchema: {
      type: 'object',
      properties: { message: { type: 'string', description: 'What to tell the user' } },
      required: ['message'],
    },
  },
  {
    name: 'test_elicitation_sep1034_defaults',
    description: 'Elicits a form whose fields all carry defaults (SEP-1034).',
    inputSchema: noArgs,
  },
  {
    name: 'test_elicitation_sep1330_enums',
    description: 'Elicits a form with the five enum shapes of SEP-1330.',
    inputSchema: noArgs,
  },
  {
    name: 'json_schema_2020_12_tool',
    description: 'Takes input described with JSON Schema 2020-12 keywords (SEP-1613).',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: {
        address: {
          $anchor: 'addressDef',
          type: 'object',
          properties: { street: { type: 'string' }, city: { type: 'string' } },
        },
      },
      properties: {
        name: { type: 'string' },
        address: { $ref: '#/$defs/address' },
        contactMethod: { type: 'string', enum: ['phone', 'email'] },
        phone: { type: 'string' },
        email: { type: 'string' },
      },
      allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
      if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
      then: { required: ['phone'] },
      else: { required: ['email'] },
      additionalProperties: false,
    },
  },
  {
    name: 'test_reconnection',
    description:
      'Over HTTP, closes its own SSE response stream mid-call; the result arrives after the client resumes (SEP-1699).',
    inputSchema: noArgs,
  },

  // SEP-2322 (input-required-result-* scenarios): each asks the client, the 2025-11-25
  // way, for what the scenario's InputRequiredResult carries, and reports the answer.
  {
    name: 'test_input_required_result_elicitation',
    description: 'Asks the user for their name (elicitation) and greets them.',
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_sampling',
    description:
      "Asks the client's model for the capital of France (sampling) and returns its answer.",
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_list_roots',
    description: 'Asks the client for its roots (roots/list) and lists them.',
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_request_state',
    description: 'Asks the user to confirm (elicitation); its result says state-ok once answered.',
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_multiple_inputs',
    description:
      'Asks for a name (elicitation), a greeting (sampling) and the roots (roots/list) at once, and combines them.',
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_multi_round',
    description: 'Asks the user for a name, then (a second round) for a favorite color.',
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_tampered_state',
    description:
      "Asks the user to confirm (elicitation); the requestState guarding the round is the gateway's.",
    inputSchema: noArgs,
  },
  {
    name: 'test_input_required_result_capabilities',
    description:
      "Needs one answer: from the client's model (sampling) when the client can sample, else from the user (elicitation).",
    inputSchema: noArgs,
  },

  // SEP-2575 (server-stateless scenario): its diagnostic tools.
  {
    name: 'test_missing_capability',
    description:
      "Needs the client's model (sampling); without the sampling capability it fails with -32021.",
    inputSchema: noArgs,
  },
  {
    name: 'test_streaming_elicitation',
    description: 'Asks the user for a reply (elicitation) mid-call and returns it.',
    inputSchema: noArgs,
  },
  {
    name: 'test_logging_tool',
    description: 'Sends three log messages (info, notice, warning) and returns at once.',
    inputSchema: noArgs,
  },
  {
    name: 'test_trigger_tool_change',
    description:
      'Adds test_dynamic_tool to the tool list, or removes it, and notifies tools/list_changed.',
    inputSchema: noArgs,
  },
  {
    name: 'test_trigger_prompt_change',
    description:
      'Adds test_dynamic_prompt to the prompt list, or removes it, and notifies prompts/list_changed.',
    inputSchema: noArgs,
  },

  // SEP-2663 (the tasks extension's scenarios): plain 2025-11-25 tools; the tasks around
  // them are the gateway's. The ones the scenarios call task-supporting say so with
  // execution.taskSupport "optional" (greet, without it, is sync-only); "optional" because
  // this server has no tasks capability, so clients call them plainly anyway. (The
  // scenarios would have failing_job and test_tool_with_task "required", which would make
  // them uncallable here.)
  {
    name: 'greet',
    description: 'Returns "Hello, {name}!" at once.',
    inputSchema: {
      type: 'object',
      properties: { name: { type: 'string', description: 'Who to greet' } },
      required: ['name'],
    },
  },
  {
    name: 'slow_compute',
    description:
      'Works for `seconds` seconds (0: returns at once), then returns; stops when cancelled.',
    inputSchema: {
      type: 'object',
      properties: {
        seconds: { type: 'number', minimum: 0, description: 'How long to work' },
        label: { type: 'string', description: 'Named in the result' },
      },
    },
    execution: TASK_OPTIONAL,
  },
  {
    name: 'failing_job',
    description: 'Works for a second, then fails as a tool result with isError set.',
    inputSchema: noArgs,
    execution: TASK_OPTIONAL,
  },
  {
    name: 'protocol_error_job',
    description: 'Fails with a JSON-RPC error (-32603), not a tool result.',
    inputSchema: noArgs,
    execution: TASK_OPTIONAL,
  },
  {
    name: 'confirm_delete',
    description: 'Asks the user (elicitation) whether to delete `filename`, and says what it did.',
    inputSchema: {
      type: 'object',
      properties: { filename: { type: 'string', description: 'The file to delete' } },
    },
    execution: TASK_OPTIONAL,
  },
  {
    name: 'multi_input',
    description: 'Asks the user two questions (elicitation) at once, and returns both answers.',
    inputSchema: noArgs,
    execution: TASK_OPTIONAL,
  },
  {
    name: 'test_tool_with_task',
    description:
      'Asks the user for their name (elicitation), works for a second, then greets them.',
    inputSchema: noArgs,
    execution: TASK_OPTIONAL,
  },

  // SEP-2243 (http-custom-header-server-validation): an argument mirrored into the
  // Mcp-Param-Region HTTP header; checking the header against the body is the HTTP
  // server's (the gateway's) job.
  {
    name: 'test_custom_header',
    description:
      'Returns its `region` argument, which clients also send as the Mcp-Param-Region header.',
    inputSchema: {
      type: 'object',
      properties: {
        region: { type: 'string', description: 'A region name', 'x-mcp-header': 'Region' },
      },
      required: ['region'],
    },
  },
];

// Listed after test_trigger_tool_change adds it (and until it removes it again).
const DYNAMIC_TOOL = {
  name: 'test_dynamic_tool',
  description: 'Listed or not, by test_trigger_tool_change.',
  inputSchema: noArgs,
};

const SEP1034_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'User name', default: 'John Doe' },
    age: { type: 'integer', description: 'User age', default: 30 },
    score: { type: 'number', description: 'User score', default: 95.5 },
    status: {
      type: 'string',
      description: 'User status',
      enum: ['active', 'inactive', 'pending'],
      default: 'active',
    },
    verified: { type: 'boolean', description: 'Verification status', default: true },
  },
  required: [],
};

const SEP1330_SCHEMA = {
  type: 'object',
  properties: {
    untitledSingle: {
      type: 'string',
      description: 'Untitled single-select',
      enum: ['option1', 'option2', 'option3'],
    },
    titledSingle: {
      type: 'string',
      description: 'Titled single-select',
      oneOf: [
        { const: 'value1', title: 'First Option' },
        { const: 'value2', title: 'Second Option' },
        { const: 'value3', title: 'Third Option' },
      ],
    },
    legacyEnum: {
      type: 'string',
      description: 'Legacy titled single-select',
      enum: ['opt1', 'opt2', 'opt3'],
      enumNames: ['Option One', 'Option Two', 'Option Three'],
    },
    untitledMulti: {
      type: 'array',
      description: 'Untitled multi-select',
      items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
    },
    titledMulti: {
      type: 'array',
      description: 'Titled multi-select',
      items: {
        anyOf: [
          { const: 'value1', title: 'First Choice' },
          { const: 'value2', title: 'Second Choice' },
          { const: 'value3', title: 'Third Choice' },
        ],
      },
    },
  },
  required: [],
};

const toolError = (message) => ({ content: [text(message)], isError: true });

// A JSON-RPC error response of exactly this code, message and data (the SDK's McpError
// would prefix the message with "MCP error <code>: ").
function rpcError(code, message, data) {
  return Object.assign(new Error(message), { code }, data === undefined ? {} : { data });
}

// ---------------------------------------------------------------------------------------
// Asking the client, as a 2025-11-25 server does: a request on the stream of the call
// that needs the answer.

// MissingRequiredClientCapabilityError of 2026-07-28, with the missing capabilities as a
// ClientCapabilities object in data.requiredCapabilities.
const MISSING_CAPABILITY = -32021;

function requireCapabilities(server, what, ...names) {
  const declared = server.getClientCapabilities() ?? {};
  const missing = names.filter((n) => !declared[n]);
  if (missing.length > 0) {
    throw rpcError(
      MISSING_CAPABILITY,
      `${what} needs the client capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.join(' and ')}, which the client did not declare`,
      { requiredCapabilities: Object.fromEntries(missing.map((n) => [n, {}])) },
    );
  }
}

const hasType = (value, type) =>
  type === 'array'
    ? Array.isArray(value)
    : type === 'integer'
      ? Number.isInteger(value)
      : typeof value === type;

// Asks the user to fill a form of flat properties, all required. An accepted answer that
// lacks one of them (or has the wrong type) is asked again, twice at most.
async function elicitForm(extra, message, properties) {
  const required = Object.keys(properties);
  const params = { message, requestedSchema: { type: 'object', properties, required } };
  for (let attempt = 1; ; attempt += 1) {
    const answer = await extra.sendRequest(
      { method: 'elicitation/create', params },
      ElicitResultSchema,
    );
    if (answer.action !== 'accept') return answer;
    const content = answer.content ?? {};
    const wrong = required.filter((k) => !hasType(content[k], properties[k].type));
    if (wrong.length === 0) return { action: 'accept', content };
    if (attempt === 3) {
      throw rpcError(
        ErrorCode.InvalidParams,
        `Three answers to "${message}" lacked ${wrong.join(', ')}`,
      );
    }
  }
}

// Asks the client's model; its answer as text.
async function sample(extra, prompt, maxTokens) {
  const answer = await extra.sendRequest(
    {
      method: 'sampling/createMessage',
      params: { messages: [{ role: 'user', content: text(prompt) }], maxTokens },
    },
    CreateMessageResultSchema,
  );
  const reply = Array.isArray(answer.content) ? answer.content : [answer.content];
  return reply.map((c) => (c.type === 'text' ? c.text : `[${c.type}]`)).join('');
}

async function listRoots(extra) {
  const { roots } = await extra.sendRequest({ method: 'roots/list' }, ListRootsResultSchema);
  return roots.map((r) => (r.name ? `${r.uri} (${r.name})` : r.uri)).join(', ') || '(none)';
}

// Sleeps, or stops early with the call when it is cancelled.
function workFor(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('cancelled'));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new Error('cancelled'));
      },
      { once: true },
    );
  });
}

const NAME_FORM = { name: { type: 'string' } };
const CONFIRM_FORM = { ok: { type: 'boolean' } };
const declined = (what, answer) => toolError(`${what}: the user chose to ${answer.action}`);

async function callTool(server, state, request, extra) {
  const { name } = request.params;
  const args = request.params.arguments ?? {};
  const log = async (level, data) => {
    if (server.isMessageIgnored?.(level, extra.sessionId)) return;
    await extra.sendNotification({
      method: 'notifications/message',
      params: { level, logger: 'baton-fixture', data },
    });
  };
  switch (name) {
    case 'test_simple_text':
      return { content: [text('This is a simple text response for testing.')] };
    case 'test_image_content':
      return { content: [{ type: 'image', data: PNG_BASE64, mimeType: 'image/png' }] };
    case 'test_audio_content':
      return { content: [{ type: 'audio', data: WAV_BASE64, mimeType: 'audio/wav' }] };
    case 'test_embedded_resource':
      return {
        content: [
          {
            type: 'resource',
            resource: {
              uri: 'test://embedded-resource',
              mimeType: 'text/plain',
              text: 'This is an embedded resource content.',
            },
          },
        ],
      };
    case 'test_multiple_content_types':
      return {
        content: [
          text('Multiple content types test:'),
          { type: 'image', data: PNG_BASE64, mimeType: 'image/png' },
          {
            type: 'resource',
            resource: {
              uri: 'test://mixed-content-resource',
              mimeType: 'application/json',
              text: JSON.stringify({ test: 'data', value: 123 }),
            },
          },
        ],
      };
    case 'test_tool_with_logging':
      await log('info', 'Tool execution started');
      await sleep(50);
      await log('info', 'Tool processing data');
      await sleep(50);
      await log('info', 'Tool execution completed');
      return { content: [text('Tool with logging executed successfully')] };
    case 'test_error_handling':
      return toolError('This tool intentionally returns an error for testing');
    case 'test_tool_with_progress': {
      const token = request.params._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress, total: 100, message: `${progress}%` },
          });
        }
        if (progress < 100) await sleep(50);
      }
      return { content: [text('Tool with progress executed successfully')] };
    }
    case 'test_sampling': {
      if (typeof args.prompt !== 'string')
        return toolError('argument "prompt" (string) is required');
      if (!server.getClientCapabilities()?.sampling) {
        return toolError('the client does not support sampling');
      }
      return { content: [text(`LLM response: ${await sample(extra, args.prompt, 100)}`)] };
    }
    case 'test_elicitation':
    case 'test_elicitation_sep1034_defaults':
    case 'test_elicitation_sep1330_enums': {
      if (!server.getClientCapabilities()?.elicitation) {
        return toolError('the client does not support elicitation');
      }
      let params;
      if (name === 'test_elicitation') {
        if (typeof args.message !== 'string') {
          return toolError('argument "message" (string) is required');
        }
        params = {
          message: args.message,
          requestedSchema: {
            type: 'object',
            properties: {
              username: { type: 'string', description: "User's response" },
              email: { type: 'string', description: "User's email address" },
            },
            required: ['username', 'email'],
          },
        };
      } else if (name === 'test_elicitation_sep1034_defaults') {
        params = {
          message: 'Please review and update the form fields',
          requestedSchema: SEP1034_SCHEMA,
        };
      } else {
        params = { message: 'Please pick from each list', requestedSchema: SEP1330_SCHEMA };
      }
      const answer = await extra.sendRequest(
        { method: 'elicitation/create', params },
        ElicitResultSchema,
      );
      return {
        content: [
          text(
            `User response: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`,
          ),
        ],
      };
    }
    case 'json_schema_2020_12_tool':
      return { content: [text(`Received: ${JSON.stringify(args)}`)] };
    case 'test_reconnection':
      // Over HTTP with an event store, close this call's SSE stream; the client resumes
      // with GET and Last-Event-ID and gets the result replayed. Over stdio: no stream.
      if (extra.closeSSEStream) {
        await sleep(100);
        extra.closeSSEStream();
        await sleep(RETRY_MS * 2);
      }
      return { content: [text('Reconnection test completed successfully')] };

    // SEP-2322
    case 'test_input_required_result_elicitation':
    case 'test_input_required_result_tampered_state': {
      requireCapabilities(server, name, 'elicitation');
      if (name === 'test_input_required_result_tampered_state') {
        const answer = await elicitForm(extra, 'Please confirm', CONFIRM_FORM);
        if (answer.action !== 'accept') return declined('Not confirmed', answer);
        return { content: [text(`Confirmed: ok=${answer.content.ok}`)] };
      }
      const answer = await elicitForm(extra, 'What is your name?', NAME_FORM);
      if (answer.action !== 'accept') return declined('No name', answer);
      return { content: [text(`Hello, ${answer.content.name}!`)] };
    }
    case 'test_input_required_result_sampling':
      requireCapabilities(server, name, 'sampling');
      return {
        content: [
          text(`The model says: ${await sample(extra, 'What is the capital of France?', 100)}`),
        ],
      };
    case 'test_input_required_result_list_roots':
      requireCapabilities(server, name, 'roots');
      return { content: [text(`The client's roots: ${await listRoots(extra)}`)] };
    case 'test_input_required_result_request_state': {
      requireCapabilities(server, name, 'elicitation');
      const answer = await elicitForm(extra, 'Please confirm', CONFIRM_FORM);
      if (answer.action !== 'accept') return declined('Not confirmed', answer);
      return { content: [text(`state-ok: the round came back answered, ok=${answer.content.ok}`)] };
    }
    case 'test_input_required_result_multiple_inputs': {
      requireCapabilities(server, name, 'elicitation', 'sampling', 'roots');
      // All three at once: one round of three input requests.
      const [who, greeting, roots] = await Promise.all([
        elicitForm(extra, 'What is your name?', NAME_FORM),
        sample(extra, 'Generate a greeting', 50),
        listRoots(extra),
      ]);
      const named =
        who.action === 'accept' ? who.content.name : `(the user chose to ${who.action})`;
      return { content: [text(`${greeting} ${named}; roots: ${roots}`)] };
    }
    case 'test_input_required_result_multi_round': {
      requireCapabilities(server, name, 'elicitation');
      const first = await elicitForm(extra, 'Step 1: What is your name?', NAME_FORM);
      if (first.action !== 'accept') return declined('Step 1 unanswered', first);
      const second = await elicitForm(extra, 'Step 2: What is your favorite color?', {
        color: { type: 'string' },
      });
      if (second.action !== 'accept') return declined('Step 2 unanswered', second);
      return {
        content: [text(`${first.content.name}'s favorite color is ${second.content.color}.`)],
      };
    }
    case 'test_input_required_result_capabilities': {
      const declared = server.getClientCapabilities() ?? {};
      if (declared.sampling) {
        return { content: [text(`The model picked: ${await sample(extra, 'Pick a color', 20)}`)] };
      }
      if (declared.elicitation) {
        const answer = await elicitForm(extra, 'Pick a color', { color: { type: 'string' } });
        if (answer.action !== 'accept') return declined('No color', answer);
        return { content: [text(`The user picked: ${answer.content.color}`)] };
      }
      throw rpcError(
        MISSING_CAPABILITY,
        `${name} needs the client capability sampling (or elicitation), which the client did not declare`,
        { requiredCapabilities: { sampling: {} } },
      );
    }

    // SEP-2575
    case 'test_missing_capability':
      requireCapabilities(server, name, 'sampling');
      return { content: [text(`The model says: ${await sample(extra, 'Say hello', 20)}`)] };
    case 'test_streaming_elicitation': {
      requireCapabilities(server, name, 'elicitation');
      const answer = await elicitForm(extra, 'Anything to say?', { reply: { type: 'string' } });
      if (answer.action !== 'accept') return declined('No reply', answer);
      return { content: [text(`The user said: ${answer.content.reply}`)] };
    }
    case 'test_logging_tool':
      await log('info', 'test_logging_tool: first message');
      await log('notice', 'test_logging_tool: second message');
      await log('warning', 'test_logging_tool: third message');
      return { content: [text('Sent three log messages')] };
    case 'test_trigger_tool_change':
      state.dynamicTool = !state.dynamicTool;
      await server.sendToolListChanged();
      return {
        content: [text(`test_dynamic_tool is now ${state.dynamicTool ? 'listed' : 'gone'}`)],
      };
    case 'test_trigger_prompt_change':
      state.dynamicPrompt = !state.dynamicPrompt;
      await server.sendPromptListChanged();
      return {
        content: [text(`test_dynamic_prompt is now ${state.dynamicPrompt ? 'listed' : 'gone'}`)],
      };
    case 'test_dynamic_tool':
      if (!state.dynamicTool) throw rpcError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
      return { content: [text('test_dynamic_tool is here')] };

    // SEP-2663
    case 'greet':
      if (typeof args.name !== 'string') return toolError('argument "name" (string) is required');
      return { content: [text(`Hello, ${args.name}!`)] };
    case 'slow_compute': {
      const seconds = args.seconds ?? 1;
      if (typeof seconds !== 'number' || !(seconds >= 0)) {
        return toolError('argument "seconds" must be a number, 0 or more');
      }
      await workFor(seconds * 1000, extra.signal);
      return { content: [text(`Computed ${args.label ?? 'a result'} in ${seconds} s`)] };
    }
    case 'failing_job':
      await workFor(1000, extra.signal);
      return toolError('failing_job failed, as it always does');
    case 'protocol_error_job':
      throw rpcError(ErrorCode.InternalError, 'protocol_error_job broke, as it always does');
    case 'confirm_delete': {
      requireCapabilities(server, name, 'elicitation');
      const file = typeof args.filename === 'string' ? args.filename : 'the file';
      const answer = await elicitForm(extra, `Delete ${file}?`, { confirm: { type: 'boolean' } });
      const deleted = answer.action === 'accept' && answer.content.confirm;
      return { content: [text(deleted ? `Deleted ${file}` : `Kept ${file}`)] };
    }
    case 'multi_input': {
      requireCapabilities(server, name, 'elicitation');
      const form = { name: { type: 'string' }, confirm: { type: 'boolean' } };
      const answers = await Promise.all([
        elicitForm(extra, 'First question: a name, and confirm', form),
        elicitForm(extra, 'Second question: a name, and confirm', form),
      ]);
      const said = answers.map((a) => (a.action === 'accept' ? a.content.name : `(${a.action})`));
      return { content: [text(`Answers: ${said.join(', ')}`)] };
    }
    case 'test_tool_with_task': {
      requireCapabilities(server, name, 'elicitation');
      const answer = await elicitForm(extra, 'What is your name?', NAME_FORM);
      if (answer.action !== 'accept') return declined('No name', answer);
      await workFor(1000, extra.signal);
      return { content: [text(`Hello, ${answer.content.name}! (after a second of work)`)] };
    }

    // SEP-2243
    case 'test_custom_header':
      if (typeof args.region !== 'string')
        return toolError('argument "region" (string) is required');
      return { content: [text(`Region: ${args.region}`)] };

    default:
      throw rpcError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
  }
}

// ---------------------------------------------------------------------------------------
// Resources

const RESOURCES = [
  {
    uri: 'test://static-text',
    name: 'static-text',
    title: 'Static text',
    description: 'A fixed text resource.',
    mimeType: 'text/plain',
  },
  {
    uri: 'test://static-binary',
    name: 'static-binary',
    title: 'Static binary',
    description: 'A fixed PNG image.',
    mimeType: 'image/png',
  },
  {
    uri: 'test://watched-resource',
    name: 'watched-resource',
    title: 'Watched resource',
    description: 'A resource that can be subscribed to.',
    mimeType: 'text/plain',
  },
];

const RESOURCE_TEMPLATES = [
  {
    uriTemplate: 'test://template/{id}/data',
    name: 'template-data',
    title: 'Data by id',
    description: 'JSON data for the id in the URI.',
    mimeType: 'application/json',
  },
];

function readResource(uri) {
  if (uri === 'test://static-text') {
    return {
      uri,
      mimeType: 'text/plain',
      text: 'This is the content of the static text resource.',
    };
  }
  if (uri === 'test://static-binary') return { uri, mimeType: 'image/png', blob: PNG_BASE64 };
  if (uri === 'test://watched-resource') {
    return { uri, mimeType: 'text/plain', text: 'Watched resource content.' };
  }
  const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
  if (m) {
    const id = decodeURIComponent(m[1]);
    return {
      uri,
      mimeType: 'application/json',
      text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
    };
  }
  // -32002, with the URI in data (SEP-2164).
  throw rpcError(-32002, `Resource not found: ${uri}`, { uri });
}

// ---------------------------------------------------------------------------------------
// Prompts

const PROMPTS = [
  { name: 'test_simple_prompt', description: 'A prompt without arguments.' },
  {
    name: 'test_prompt_with_arguments',
    description: 'A prompt that uses its two arguments.',
    arguments: [
      { name: 'arg1', description: 'First test argument', required: true },
      { name: 'arg2', description: 'Second test argument', required: true },
    ],
  },
  {
    name: 'test_prompt_with_embedded_resource',
    description: 'A prompt that embeds the resource it is given.',
    arguments: [
      { name: 'resourceUri', description: 'URI of the resource to embed', required: true },
    ],
  },
  { name: 'test_prompt_with_image', description: 'A prompt with an image.' },
  {
    name: 'test_input_required_result_prompt',
    description: 'A prompt that asks the user (elicitation) for its context (SEP-2322).',
  },
];

// Listed after test_trigger_prompt_change adds it (and until it removes it again).
const DYNAMIC_PROMPT = {
  name: 'test_dynamic_prompt',
  description: 'Listed or not, by test_trigger_prompt_change.',
};

async function getPrompt(server, state, extra, name, args = {}) {
  const user = (content) => ({ role: 'user', content });
  const need = (key) => {
    if (typeof args[key] !== 'string') {
      throw rpcError(ErrorCode.InvalidParams, `Missing required argument: ${key}`);
    }
    return args[key];
  };
  switch (name) {
    case 'test_simple_prompt':
      return { messages: [user(text('This is a simple prompt for testing.'))] };
    case 'test_prompt_with_arguments': {
      const arg1 = need('arg1');
      const arg2 = need('arg2');
      return { messages: [user(text(`Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`))] };
    }
    case 'test_prompt_with_embedded_resource':
      return {
        messages: [
          user({
            type: 'resource',
            resource: {
              uri: need('resourceUri'),
              mimeType: 'text/plain',
              text: 'Embedded resource content for testing.',
            },
          }),
          user(text('Please process the embedded resource above.')),
        ],
      };
    case 'test_prompt_with_image':
      return {
        messages: [
          user({ type: 'image', data: PNG_BASE64, mimeType: 'image/png' }),
          user(text('Please analyze the image above.')),
        ],
      };
    case 'test_input_required_result_prompt': {
      requireCapabilities(server, name, 'elicitation');
      const answer = await elicitForm(extra, 'What context should the prompt use?', {
        context: { type: 'string' },
      });
      if (answer.action !== 'accept') {
        throw rpcError(
          ErrorCode.InvalidRequest,
          `${name} needs a context; the user chose to ${answer.action}`,
        );
      }
      return {
        messages: [user(text(`Answer with this context in mind: ${answer.content.context}`))],
      };
    }
    case 'test_dynamic_prompt':
      if (state.dynamicPrompt) return { messages: [user(text('test_dynamic_prompt is here'))] };
      throw rpcError(ErrorCode.InvalidParams, `Unknown prompt: ${name}`);
    default:
      throw rpcError(ErrorCode.InvalidParams, `Unknown prompt: ${name}`);
  }
}

const COMPLETIONS = {
  arg1: ['paris', 'park', 'party', 'test', 'testing', 'tested'],
  arg2: ['alpha', 'beta', 'gamma'],
};

// ---------------------------------------------------------------------------------------
// One MCP server (one per stdio process, one per HTTP session)

function createServer() {
  const server = new Server(
    { name: 'baton-conformance-fixture', version: '1.0.0' },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
      instructions: "Baton's fixture server for the MCP conformance suite.",
    },
  );
  const subscriptions = new Set();
  // What test_trigger_tool_change and test_trigger_prompt_change toggle.
  const state = { dynamicTool: false, dynamicPrompt: false };

  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: state.dynamicTool ? [...TOOLS, DYNAMIC_TOOL] : TOOLS,
  }));
  server.setRequestHandler(CallToolRequestSchema, (request, extra) =>
    callTool(server, state, request, extra),
  );

  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: RESOURCES }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: RESOURCE_TEMPLATES,
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (request) => ({
    contents: [readResource(request.params.uri)],
  }));
  server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    subscriptions.add(request.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
    subscriptions.delete(request.params.uri);
    return {};
  });

  server.setRequestHandler(ListPromptsRequestSchema, async () => ({
    prompts: state.dynamicPrompt ? [...PROMPTS, DYNAMIC_PROMPT] : PROMPTS,
  }));
  server.setRequestHandler(GetPromptRequestSchema, (request, extra) =>
    getPrompt(server, state, extra, request.params.name, request.params.arguments),
  );

  server.setRequestHandler(CompleteRequestSchema, async (request) => {
    const { ref, argument } = request.params;
    let values = [];
    if (ref.type === 'ref/prompt' && ref.name === 'test_prompt_with_arguments') {
      const prefix = (argument.value ?? '').toLowerCase();
      values = (COMPLETIONS[argument.name] ?? []).filter((v) => v.startsWith(prefix));
    }
    return { completion: { values, total: values.length, hasMore: false } };
  });

  return server;
}

// ---------------------------------------------------------------------------------------
// Streamable HTTP

const RETRY_MS = 500;
const MAX_BODY = 4 * 1024 * 1024;
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

// Resumability: every event sent on an SSE stream of the session, kept in memory so a
// client that reconnects with Last-Event-ID gets what it missed on that stream.
class MemoryEventStore {
  constructor() {
    this.events = [];
    this.next = 0;
  }
  async storeEvent(streamId, message) {
    const eventId = `${streamId}:${this.next++}`;
    this.events.push({ eventId, streamId, message });
    if (this.events.length > 1000) this.events.shift();
    return eventId;
  }
  async getStreamIdForEventId(eventId) {
    return this.events.find((e) => e.eventId === eventId)?.streamId;
  }
  async replayEventsAfter(lastEventId, { send }) {
    const at = this.events.findIndex((e) => e.eventId === lastEventId);
    if (at < 0) throw new Error(`unknown event id ${lastEventId}`);
    const { streamId } = this.events[at];
    for (const e of this.events.slice(at + 1)) {
      if (e.streamId === streamId) await send(e.eventId, e.message);
    }
    return streamId;
  }
}

function hostnameOf(value) {
  try {
    return new URL(value.includes('://') ? value : `http://${value}`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

// DNS-rebinding protection: a page from another site that resolves its own name to
// this machine sends its own Host (and Origin); only loopback names are served.
function rebindingRefusal(req) {
  const host = req.headers.host;
  if (!host || !LOCAL_HOSTS.has(hostnameOf(host)))
    return `Invalid Host header: ${host ?? '(none)'}`;
  const origin = req.headers.origin;
  if (origin !== undefined && !LOCAL_HOSTS.has(hostnameOf(origin))) {
    return `Invalid Origin header: ${origin}`;
  }
  return undefined;
}

function sendError(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function serveHttp(port) {
  const sessions = new Map(); // session id -> transport

  const handle = async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/mcp') return sendError(res, 404, -32000, 'Not found: the endpoint is /mcp');
    const refusal = rebindingRefusal(req);
    if (refusal) return sendError(res, 403, -32000, refusal);

    const sessionId = req.headers['mcp-session-id'];
    let body;
    if (req.method === 'POST') {
      const raw = await readBody(req);
      try {
        body = JSON.parse(raw);
      } catch {
        return sendError(res, 400, ErrorCode.ParseError, 'Parse error: invalid JSON');
      }
    } else if (req.method !== 'GET' && req.method !== 'DELETE') {
      res.setHeader('Allow', 'GET, POST, DELETE');
      return sendError(res, 405, -32000, 'Method not allowed');
    }

    if (sessionId !== undefined) {
      const transport = sessions.get(sessionId);
      if (!transport) return sendError(res, 404, -32001, 'Session not found');
      return transport.handleRequest(req, res, body);
    }
    const initializing = req.method === 'POST' && !Array.isArray(body) && isInitializeRequest(body);
    if (!initializing) {
      return sendError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    }
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new MemoryEventStore(),
      retryInterval: RETRY_MS,
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await createServer().connect(transport);
    return transport.handleRequest(req, res, body);
  };

  const httpServer = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent)
        sendError(res, err.status ?? 500, -32603, `Internal error: ${err.message}`);
      else res.end();
    });
  });
  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${httpServer.address().port}/mcp`;
  process.stdout.write(`${url}\n`);

  const stop = () => {
    for (const transport of sessions.values()) transport.close().catch(() => {});
    httpServer.close();
    httpServer.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

// ---------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const at = argv.indexOf('--http');
if (at >= 0) {
  const port = Number(argv[at + 1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('usage: fixture.mjs [--http PORT]\n');
    process.exit(2);
  }
  await serveHttp(port);
} else if (argv.length > 0) {
  process.stderr.write('usage: fixture.mjs [--http PORT]\n');
  process.exit(2);
} else {
  const server = createServer();
  const transport = new StdioServerTransport();
  transport.onclose = () => process.exit(0);
  await server.connect(transport);
  process.stdin.on('end', () => process.exit(0));
}
