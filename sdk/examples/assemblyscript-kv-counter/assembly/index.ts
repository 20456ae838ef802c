// A visit counter kept in the app's key-value store, which outlives
// requests, deploys and restarts.
import { Request, Response, kv, serve } from "vivarium";

function count(req: Request): Response {
  const stored = kv.get("visits");
  const visits: u64 = (stored !== null ? U64.parseInt(stored) : 0) + 1;
  kv.set("visits", visits.toString());
  return Response.text("visits: " + visits.toString() + "\n");
}

export function run(): void {
  serve(count);
}
