// The official TypeScript SDK client (1.x) driving Baton's /mcp, for Baton's tests.
//
//   node ts-client.mjs <mcp-url | stdio:<json array: command and args>> <scenario> [json-args]
//
// With `stdio:` the client starts that command (e.g. `baton mcp`) and speaks over its
// stdin and stdout, with this process's environment. The client declares sampling and
// elicitation: it answers sampling with `args.sample` (or "sampled by the client") and
// elicitation with `args.answer`.
//
// Prints one JSON object on stdout: what the client saw. Scenarios:
//   list                      tools/list
//   call     {tool, arguments}            a plain call with progress
//   task     {tool, arguments, answer?}   a 2025-11-25 task, polled to its result
//   cancel   {tool, arguments}            a task created, then cancelled
//   gateway  {prompt, promptArgs, complete}  resources (all pages), templates, the first
//                             resource read, prompts, one prompt got, a completion
//   watch    {expect}         prints {"ready":true}, then on each
//                             notifications/tools/list_changed lists tools again, until
//                             `expect` is listed (30 s at most)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema,
  CreateTaskResultSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const [url, scenario, rawArgs] = process.argv.slice(2);
const args = rawArgs ? JSON.parse(rawArgs) : {};

const client = new Client(
  { name: 'baton-test', version: '1.0.0' },
  { capabilities: { elicitation: { form: {} }, sampling: {}, tasks: { list: {}, cancel: {} } } },
);
const samplings = [];
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  samplings.push(req.params);
  return {
    role: 'assistant',
    content: { type: 'text', text: args.sample ?? 'sampled by the client' },
    model: 'test-model',
    stopReason: 'endTurn',
  };
});
const elicitations = [];
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  elicitations.push(req.params);
  return { action: 'accept', content: args.answer ?? {} };
});
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
let changes = 0;
let onChange = () => {};
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
  changes += 1;
  onChange();
});
const transport = url.startsWith('stdio:')
  ? (() => {
      const [command, ...commandArgs] = JSON.parse(url.slice('stdio:'.length));
      return new StdioClientTransport({ command, args: commandArgs, env: { ...process.env }, stderr: 'inherit' });
    })()
  : new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);

const out = {
  protocolVersion: transport.protocolVersion,
  sessionId: transport.sessionId,
  capabilities: client.getServerCapabilities(),
};

switch (scenario) {
  case 'list':
    out.tools = (await client.listTools()).tools;
    break;
  case 'call': {
    const progress = [];
    out.result = await client.callTool(
      { name: args.tool, arguments: args.arguments },
      undefined,
      { onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true, timeout: 60000 },
    );
    out.progress = progress;
    break;
  }
  case 'task': {
    await client.listTools();
    const messages = [];
    for await (const m of client.experimental.tasks.callToolStream(
      { name: args.tool, arguments: args.arguments },
      undefined,
      { task: { ttl: 60000 } },
    )) {
      messages.push(m);
    }
    out.messages = messages;
    if (messages[0]?.task) {
      out.get = await client.experimental.tasks.getTask(messages[0].task.taskId);
      out.list = await client.experimental.tasks.listTasks();
    }
    break;
  }
  case 'cancel': {
    const created = await client.request(
      { method: 'tools/call', params: { name: args.tool, arguments: args.arguments, task: { ttl: 60000 } } },
      CreateTaskResultSchema,
    );
    out.created = created;
    out.cancelled = await client.experimental.tasks.cancelTask(created.task.taskId);
    out.get = await client.experimental.tasks.getTask(created.task.taskId);
    try {
      await client.experimental.tasks.cancelTask(created.task.taskId);
      out.secondCancel = 'accepted';
    } catch (e) {
      out.secondCancel = { code: e.code, message: e.message };
    }
    break;
  }
  case 'gateway': {
    const resources = [];
    let cursor;
    do {
      const page = await client.listResources(cursor ? { cursor } : undefined);
      resources.push(...page.resources);
      cursor = page.nextCursor;
    } while (cursor);
    out.resources = resources;
    out.templates = (await client.listResourceTemplates()).resourceTemplates;
    if (resources.length) out.read = await client.readResource({ uri: resources[0].uri });
    out.prompts = (await client.listPrompts()).prompts;
    if (args.prompt) out.prompt = await client.getPrompt({ name: args.prompt, arguments: args.promptArgs ?? {} });
    if (args.complete) out.completion = await client.complete(args.complete);
    try {
      await client.readResource({ uri: 'baton://nowhere/x' });
      out.unknownRead = 'accepted';
    } catch (e) {
      out.unknownRead = { code: e.code, message: e.message };
    }
    break;
  }
  case 'watch': {
    out.before = (await client.listTools()).tools.map((t) => t.name);
    console.log(JSON.stringify({ ready: true }));
    const deadline = Date.now() + 30000;
    out.after = out.before;
    while (!out.after.includes(args.expect) && Date.now() < deadline) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        onChange = () => { clearTimeout(timer); resolve(); };
      });
      out.after = (await client.listTools()).tools.map((t) => t.name);
    }
    out.changes = changes;
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
out.elicitations = elicitations;
out.samplings = samplings;
out.logs = logs;
console.log(JSON.stringify(out));
await client.close();
