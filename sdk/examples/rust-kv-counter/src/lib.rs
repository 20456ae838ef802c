//! A visit counter kept in the app's key-value store, which outlives
//! requests, deploys and restarts.
use vivarium::{kv, Request, Response};

fn count(_req: Request) -> Response {
    let visits = kv::get_string("visits")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    kv::set("visits", visits.to_string());
    Response::text(format!("visits: {}\n", visits))
}

vivarium::handler!(count);
