// Fetches the URL in the app's UPSTREAM setting and reports what came back.
// The manifest's "outbound" list says where the app may connect; a request
// anywhere else fails as if the server were unreachable.
import { Request, Response, config, log, serve } from "vivarium";

function fetchUpstream(req: Request): Response {
  const upstream = config("UPSTREAM");
  if (upstream === null) {
    return Response.text("UPSTREAM is not set\n").withStatus(500);
  }
  const resp = Request.get(upstream).withHeader("Accept", "text/plain").send();
  if (resp === null) {
    log("fetching " + upstream + " failed");
    return Response.text("could not fetch " + upstream + "\n").withStatus(502);
  }
  const type = resp.header("Content-Type");
  return Response.text(
    "upstream answered " + resp.status.toString() + " (" + (type !== null ? type : "no type") +
      "): " + resp.text());
}

export function run(): void {
  serve(fetchUpstream);
}
