// Echo: answers with the method, path, query, headers and body it received,
// headers one per line with lower-case names, sorted by name.
import { Header, Request, Response, serve } from "vivarium";

function echo(req: Request): Response {
  let text = "method: " + req.method + "\npath: " + req.path + "\nquery: " + req.query + "\n";
  const headers = req.headers.map<Header>((h) => new Header(h.name.toLowerCase(), h.value));
  // An insertion sort, which is stable: values of one header keep the
  // order they came in.
  for (let i = 1; i < headers.length; i++) {
    const h = headers[i];
    let j = i - 1;
    while (j >= 0 && headers[j].name > h.name) {
      headers[j + 1] = headers[j];
      j--;
    }
    headers[j + 1] = h;
  }
  for (let i = 0; i < headers.length; i++) {
    text += "header " + headers[i].name + ": " + headers[i].value + "\n";
  }
  const head = Uint8Array.wrap(String.UTF8.encode(text + "body: "));
  const body = Uint8Array.wrap(req.body);
  const out = new Uint8Array(head.length + body.length + 1);
  out.set(head, 0);
  out.set(body, head.length);
  out[out.length - 1] = 0x0a;
  return new Response().withHeader("Content-Type", "text/plain").withBody(out.buffer);
}

export function run(): void {
  serve(echo);
}
