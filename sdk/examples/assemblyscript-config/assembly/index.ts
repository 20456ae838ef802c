// Greets with the app's GREETING setting: the manifest's "env", or a value
// set through the API, which wins.
import { Request, Response, config, serve } from "vivarium";

function greet(req: Request): Response {
  const greeting = config("GREETING");
  return Response.text((greeting !== null ? greeting : "Hello") + ", world!\n");
}

export function run(): void {
  serve(greet);
}
