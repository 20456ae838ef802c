//! Fetches the URL in the app's UPSTREAM setting and reports what came back.
//! The manifest's "outbound" list says where the app may connect; a request
//! anywhere else fails as if the server were unreachable.
use vivarium::{Request, Response};

fn fetch(_req: Request) -> Response {
    let upstream = match vivarium::config("UPSTREAM") {
        Some(url) => url,
        None => return Response::text("UPSTREAM is not set\n").with_status(500),
    };
    match Request::get(&upstream)
        .with_header("Accept", "text/plain")
        .send()
    {
        Ok(resp) => Response::text(format!(
            "upstream answered {} ({}): {}",
            resp.status(),
            resp.header("Content-Type").unwrap_or("no type"),
            resp.text_body()
        )),
        Err(err) => {
            vivarium::log(&format!("fetching {} failed: {}", upstream, err));
            Response::text(format!("could not fetch {}\n", upstream)).with_status(502)
        }
    }
}

vivarium::handler!(fetch);
