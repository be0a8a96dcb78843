// A Server-Sent Events parser (the WHATWG event stream format), over a fetch body.

/** One dispatched event. `id` is the last id the stream set (SSE keeps it across events). */
export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
  /** Whether this very message carried an `id` field. */
  hasId: boolean;
  retry: number | undefined;
}

/**
 * Parses an event stream: lines split on CR, LF or CRLF (also across chunks), `field:
 * value` with one optional space, `data` lines joined with LF, comments (`:`) ignored,
 * and an event dispatched at each blank line when it has data. An event still open when
 * the stream ends is dropped, as the format says.
 */
export async function* parseSse(chunks: AsyncIterable<string>): AsyncGenerator<SseMessage> {
  let buffer = '';
  let lastId: string | undefined;
  let event = '';
  let data: string[] = [];
  let hasData = false;
  let hasId = false;
  let retry: number | undefined;
  let pendingCr = false;

  const line = (text: string): SseMessage | undefined => {
    if (text === '') {
      const msg: SseMessage | undefined = hasData
        ? { event: event || 'message', data: data.join('\n'), id: lastId, hasId, retry }
        : undefined;
      event = '';
      data = [];
      hasData = false;
      hasId = false;
      retry = undefined;
      return msg;
    }
    if (text.startsWith(':')) return undefined;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        event = value;
        break;
      case 'data':
        data.push(value);
        hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) {
          lastId = value;
          hasId = true;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) retry = Number(value);
        break;
      default:
        break;
    }
    return undefined;
  };

  for await (const chunk of chunks) {
    buffer += chunk;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i];
      if (pendingCr) {
        pendingCr = false;
        if (c === '\n' && i === start) {
          start = i + 1;
          continue;
        }
      }
      if (c === '\n' || c === '\r') {
        const msg = line(buffer.slice(start, i));
        if (msg) yield msg;
        if (c === '\r') pendingCr = true;
        start = i + 1;
      }
    }
    buffer = buffer.slice(start);
  }
}

/** The text of a fetch body, decoded as UTF-8 chunk by chunk. */
export async function* decodeBody(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      if (text) yield text;
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    reader.releaseLock();
  }
}
