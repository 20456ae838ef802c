// Server-Sent Events over fetch(): EventSource cannot send the Authorization
// header, so the page reads text/event-stream bodies itself, with the token in
// the header where it belongs (never in a URL that lands in logs and history).

// Parses a text/event-stream body (a ReadableStream of bytes) as the HTML
// standard describes and yields {event, data, id} for each event dispatched.
export async function* parseEventStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = '';
  let data = [];
  let id = null;
  let done = false;
  while (!done) {
    const chunk = await reader.read();
    done = chunk.done;
    if (!done) buffer += chunk.value;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      if (!match) break;
      // A CR that ends the buffer may be the first half of a CRLF.
      if (match[0] === '\r' && match.index === buffer.length - 1 && !done) break;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      if (line === '') {
        if (data.length > 0) yield { event: event || 'message', data: data.join('\n'), id };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
  }
}

// Opens url as an event stream with the bearer token and yields its events
// until the server ends it. Throws an Error with the API's own message when
// the answer is not a stream (401, 404 ...); the Error has the HTTP status.
export async function* eventStream(url, { token, signal, lastEventId } = {}) {
  const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${token}` };
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  const response = await fetch(url, { headers, signal, cache: 'no-store' });
  const type = response.headers.get('Content-Type') || '';
  if (!response.ok || !type.startsWith('text/event-stream')) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // Not JSON: keep the status line.
    }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  yield* parseEventStream(response.body);
}
