//! Echo: answers with the method, path, query, headers and body it received,
//! headers one per line with lower-case names, sorted by name.
use vivarium::{Request, Response};

fn echo(req: Request) -> Response {
    let mut out = format!(
        "method: {}\npath: {}\nquery: {}\n",
        req.method(),
        req.path(),
        req.query()
    );
    let mut headers: Vec<(String, &str)> = req
        .headers()
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_str()))
        .collect();
    // A stable sort: values of one header keep the order they came in.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in headers {
        out.push_str(&format!("header {}: {}\n", name, value));
    }
    let mut body = out.into_bytes();
    body.extend_from_slice(b"body: ");
    body.extend_from_slice(req.body());
    body.push(b'\n');
    Response::new()
        .with_header("Content-Type", "text/plain")
        .with_body(body)
}

vivarium::handler!(echo);
