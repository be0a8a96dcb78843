// The official TypeScript SDK client (1.x) driving Baton's /mcp, for Baton's tests.
//
//   node ts-client.mjs <mcp-url> <scenario> [json-args]
//
// Prints one JSON object on stdout: what the client saw. Scenarios:
//   list                      tools/list
//   call     {tool, arguments}            a plain call with progress
//   task     {tool, arguments, answer?}   a 2025-11-25 task, polled to its result
//   cancel   {tool, arguments}            a task created, then cancelled
//   watch    {expect}         prints {"ready":true}, then on each
//                             notifications/tools/list_changed lists tools again, until
//                             `expect` is listed (30 s at most)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateTaskResultSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const [url, scenario, rawArgs] = process.argv.slice(2);
const args = rawArgs ? JSON.parse(rawArgs) : {};

const client = new Client(
  { name: 'baton-test', version: '1.0.0' },
  { capabilities: { elicitation: { form: {} }, tasks: { list: {}, cancel: {} } } },
);
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
const transport = new StreamableHTTPClientTransport(new URL(url));
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
out.logs = logs;
console.log(JSON.stringify(out));
await client.close();
