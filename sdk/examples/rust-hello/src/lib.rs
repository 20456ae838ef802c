//! The smallest Vivarium app in Rust.
use vivarium::{Request, Response};

fn hello(_req: Request) -> Response {
    Response::text("Hello, world!\n")
}

vivarium::handler!(hello);
