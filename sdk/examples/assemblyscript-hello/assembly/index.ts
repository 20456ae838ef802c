// The smallest Vivarium app in AssemblyScript.
import { Request, Response, serve } from "vivarium";

function hello(req: Request): Response {
  return Response.text("Hello, world!\n");
}

export function run(): void {
  serve(hello);
}
