//! Greets with the app's GREETING setting: the manifest's "env", or a value
//! set through the API, which wins.
use vivarium::{Request, Response};

fn greet(_req: Request) -> Response {
    let greeting = vivarium::config("GREETING").unwrap_or_else(|| "Hello".to_string());
    Response::text(format!("{}, world!\n", greeting))
}

vivarium::handler!(greet);
