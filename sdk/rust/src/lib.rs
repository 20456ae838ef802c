//! Write Vivarium apps in Rust.
//!
//! An app is a `cdylib` crate with one handler, a function from [`Request`]
//! to [`Response`]. Vivarium calls it once per request, each time in a fresh
//! instance:
//!
//! ```no_run
//! use vivarium::{Request, Response};
//!
//! fn hello(_req: Request) -> Response {
//!     Response::text("Hello, world!\n")
//! }
//!
//! vivarium::handler!(hello);
//! ```
//!
//! Beyond requests and responses the crate gives the app its key-value
//! store ([`kv`]), its configuration ([`config`]), its log ([`log`]) and
//! outbound HTTP ([`Request::send`], [`fetch`]). [`sys`] has the raw
//! Terrarium host calls underneath.
//!
//! The crate depends on nothing outside `std` and builds with Rust 1.63.

use std::fmt;

pub mod sys;

/// Makes `handler` (a `fn(Request) -> Response`) the app's request handler
/// by exporting the `run` function Vivarium calls.
///
/// It registers the crate's allocator with the host, reports panics to the
/// app's log (the request then ends with a 500), reads the request, calls
/// the handler and sends the response it returns.
#[macro_export]
macro_rules! handler {
    ($handler:path) => {
        #[no_mangle]
        pub extern "C" fn run() {
            $crate::serve($handler);
        }
    };
}

/// What [`handler!`] expands to: serves the current request with `handler`.
/// Call it from a `run` of your own only if you need to do something before.
pub fn serve<F: FnOnce(Request) -> Response>(handler: F) {
    sys::init_mm();
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        unsafe { sys::hostcall_panic_hook(msg.as_ptr(), msg.len()) }
    }));
    let response = handler(Request::incoming());
    response.send_outgoing();
}

/// Why an outbound request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: String) -> Error {
        Error { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Header lists: one `(name, value)` entry per value, names as given.
type Headers = Vec<(String, String)>;

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Which kind of handle a host call is about: the same calls exist for
/// requests and for responses.
#[derive(Clone, Copy)]
enum Kind {
    Request,
    Response,
}

/// Every header of a request or response handle, one entry per value.
fn read_headers(kind: Kind, handle: i32) -> Headers {
    let mut headers = Vec::new();
    let (mut names, mut n) = (std::ptr::null_mut(), 0);
    unsafe {
        match kind {
            Kind::Request => sys::hostcall_req_get_headers(&mut names, &mut n, handle),
            Kind::Response => sys::hostcall_resp_get_headers(&mut names, &mut n, handle),
        }
    }
    for name in unsafe { sys::take_slices(names, n) } {
        let (mut values, mut n_values) = (std::ptr::null_mut(), 0);
        let (p, l) = (name.as_ptr(), name.len());
        unsafe {
            match kind {
                Kind::Request => {
                    sys::hostcall_req_get_header(&mut values, &mut n_values, handle, p, l)
                }
                Kind::Response => {
                    sys::hostcall_resp_get_header(&mut values, &mut n_values, handle, p, l)
                }
            }
        }
        let name = lossy(name);
        for value in unsafe { sys::take_slices(values, n_values) } {
            headers.push((name.clone(), lossy(value)));
        }
    }
    headers
}

/// Sets every header of `headers` on a handle, the values of one name
/// (compared case-insensitively) together.
fn write_headers(kind: Kind, handle: i32, headers: &[(String, String)]) -> bool {
    let mut ok = true;
    for (i, (name, _)) in headers.iter().enumerate() {
        if headers[..i]
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let values: Vec<sys::GuestSlice> = headers[i..]
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| sys::GuestSlice {
                ptr: v.as_ptr(),
                len: v.len(),
            })
            .collect();
        let (p, l, vp, vl) = (name.as_ptr(), name.len(), values.as_ptr(), values.len());
        let status = unsafe {
            match kind {
                Kind::Request => sys::hostcall_req_set_header(handle, p, l, vp, vl),
                Kind::Response => sys::hostcall_resp_set_header(handle, p, l, vp, vl),
            }
        };
        ok &= status == sys::STATUS_OK;
    }
    ok
}

/// The method, target or body of a request, or the body of a response.
#[derive(Clone, Copy)]
enum Part {
    Method,
    Path,
    RequestBody,
    ResponseBody,
}

fn read_bytes(part: Part, handle: i32) -> Vec<u8> {
    let (mut ptr, mut len) = (std::ptr::null_mut(), 0);
    unsafe {
        match part {
            Part::Method => sys::hostcall_req_get_method(&mut ptr, &mut len, handle),
            Part::Path => sys::hostcall_req_get_path(&mut ptr, &mut len, handle),
            Part::RequestBody => sys::hostcall_req_get_body(&mut ptr, &mut len, handle),
            Part::ResponseBody => sys::hostcall_resp_get_body(&mut ptr, &mut len, handle),
        }
        sys::take_bytes(ptr, len)
    }
}

/// An HTTP request: the one being served, or one to send elsewhere.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    url: String,
    headers: Headers,
    body: Vec<u8>,
}

impl Request {
    /// A request to send: `method` to an absolute `url`.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A GET request to send to `url`.
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// The request being served, read from the host.
    fn incoming() -> Request {
        let h = sys::REQUEST_INCOMING;
        Request {
            method: lossy(read_bytes(Part::Method, h)),
            url: lossy(read_bytes(Part::Path, h)),
            headers: read_headers(Kind::Request, h),
            body: read_bytes(Part::RequestBody, h),
        }
    }

    /// Adds a header value (a name may have several).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The method, `"GET"`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL of a request to send; for the request being served, its
    /// target: the path and the query, `"/a/b?x=1"`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path of the request being served, `"/a/b"`, still
    /// percent-encoded.
    pub fn path(&self) -> &str {
        match self.url.find('?') {
            Some(i) => &self.url[..i],
            None => &self.url,
        }
    }

    /// The query string after the `?`, `"x=1"`, or `""`.
    pub fn query(&self) -> &str {
        match self.url.find('?') {
            Some(i) => &self.url[i + 1..],
            None => "",
        }
    }

    /// The first value of the header called `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every header, one `(name, value)` entry per value.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The host handle of a new outbound request with this one's method,
    /// URL, headers and body.
    fn create(&self) -> Result<i32, Error> {
        let m = &self.method;
        let u = &self.url;
        let req = unsafe { sys::hostcall_req_create(m.as_ptr(), m.len(), u.as_ptr(), u.len()) };
        if req < 0 {
            return Err(Error::new(format!("cannot make a {} request to {}", m, u)));
        }
        let ok = write_headers(Kind::Request, req, &self.headers)
            && unsafe { sys::hostcall_req_set_body(req, self.body.as_ptr(), self.body.len()) }
                == sys::STATUS_OK;
        if !ok {
            return Err(Error::new(format!("invalid header or body for {}", u)));
        }
        Ok(req)
    }

    /// Sends the request and waits for the response. It fails when the app's
    /// manifest does not allow the URL's origin in `"outbound"`, and when the
    /// server is unreachable or too slow.
    pub fn send(self) -> Result<Response, Error> {
        let req = self.create()?;
        let resp = unsafe { sys::hostcall_req_send(req) };
        Response::from_handle(resp, &self.url)
    }

    /// Starts sending the request and returns at once; several can be under
    /// way together.
    pub fn send_async(self) -> Result<Pending, Error> {
        let req = self.create()?;
        let handle = unsafe { sys::hostcall_req_send_async(req) };
        if handle < 0 {
            return Err(Error::new(format!("cannot send a request to {}", self.url)));
        }
        Ok(Pending {
            handle,
            url: self.url,
        })
    }
}

/// Sends `request` and waits for its response; see [`Request::send`].
pub fn fetch(request: Request) -> Result<Response, Error> {
    request.send()
}

/// An outbound request under way, from [`Request::send_async`].
#[derive(Debug)]
pub struct Pending {
    handle: i32,
    url: String,
}

impl Pending {
    /// Waits for the response.
    pub fn wait(self) -> Result<Response, Error> {
        let resp = unsafe { sys::hostcall_pending_req_wait(self.handle) };
        Response::from_handle(resp, &self.url)
    }

    /// The response if it has come (or the request failed), `None` while
    /// it is still under way. Once it has given `Some`, the request is
    /// spent: polling or waiting for it again is an error.
    pub fn poll(&self) -> Option<Result<Response, Error>> {
        let resp = unsafe { sys::hostcall_pending_req_poll(self.handle) };
        if resp == sys::NOT_READY {
            return None;
        }
        Some(Response::from_handle(resp, &self.url))
    }
}

/// Waits for the first of `pending` to finish, removes it from the vector
/// and returns its response. `None` when the vector is empty.
pub fn wait_any(pending: &mut Vec<Pending>) -> Option<Result<Response, Error>> {
    if pending.is_empty() {
        return None;
    }
    let handles: Vec<i32> = pending.iter().map(|p| p.handle).collect();
    let mut done = -1;
    let resp =
        unsafe { sys::hostcall_pending_req_select(handles.as_ptr(), handles.len(), &mut done) };
    match pending.iter().position(|p| p.handle == done) {
        Some(i) => {
            let finished = pending.remove(i);
            Some(Response::from_handle(resp, &finished.url))
        }
        None => Some(Err(Error::new(
            "waiting for the pending requests failed".to_string(),
        ))),
    }
}

/// An HTTP response: the one the handler returns, or one from another
/// server.
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Response {
        Response::new()
    }
}

impl Response {
    /// 200, no headers, an empty body.
    pub fn new() -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with a `text/plain` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::new()
            .with_header("Content-Type", "text/plain")
            .with_body(body.into())
    }

    /// 200 with a `text/html` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::new()
            .with_header("Content-Type", "text/html")
            .with_body(body.into())
    }

    /// Sets the status code (100 to 599).
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Adds a header value (a name may have several).
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of the header called `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every header, one `(name, value)` entry per value.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text_body(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Reads a response handle from the host: status, headers and body.
    fn from_handle(handle: i32, url: &str) -> Result<Response, Error> {
        if handle < 0 {
            return Err(Error::new(format!(
                "request to {} failed: not allowed by the manifest's \"outbound\", \
                 unreachable or too slow",
                url
            )));
        }
        let status = unsafe { sys::hostcall_resp_get_response_code(handle) };
        Ok(Response {
            status: u16::try_from(status).unwrap_or(0),
            headers: read_headers(Kind::Response, handle),
            body: read_bytes(Part::ResponseBody, handle),
        })
    }

    /// Makes this the response to the request being served.
    fn send_outgoing(&self) {
        let h = sys::RESPONSE_OUTGOING;
        let mut ok = unsafe { sys::hostcall_resp_set_response_code(h, u32::from(self.status)) }
            == sys::STATUS_OK;
        ok &= write_headers(Kind::Response, h, &self.headers);
        ok &= unsafe { sys::hostcall_resp_set_body(h, self.body.as_ptr(), self.body.len()) }
            == sys::STATUS_OK;
        if !ok {
            log(&format!(
                "the host refused part of the response (status {})",
                self.status
            ));
        }
    }
}

/// The app's key-value store: bytes to bytes, kept across requests, deploys
/// and restarts, visible to no other app. The `bool` results come from the
/// host, which also answers `false` when a call fails (a value over 1 MiB,
/// for one).
pub mod kv {
    use crate::sys;

    /// The value of `key`, or `None` when it is absent.
    pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        let key = key.as_ref();
        let (mut ptr, mut len) = (std::ptr::null_mut(), 0);
        let found =
            unsafe { sys::hostcall_kvstore_get(&mut ptr, &mut len, key.as_ptr(), key.len()) };
        let value = unsafe { sys::take_bytes(ptr, len) };
        if found != 0 {
            Some(value)
        } else {
            None
        }
    }

    /// The value of `key` as text (invalid UTF-8 replaced), or `None`.
    pub fn get_string(key: impl AsRef<[u8]>) -> Option<String> {
        get(key).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Sets `key` to `value`, replacing it: true if the key was new.
    pub fn set(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> bool {
        let (k, v) = (key.as_ref(), value.as_ref());
        unsafe { sys::hostcall_kvstore_insert(k.as_ptr(), k.len(), v.as_ptr(), v.len()) != 0 }
    }

    /// Sets `key` only if it is absent, else leaves it as it is: true if it
    /// did.
    pub fn set_if_absent(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> bool {
        let (k, v) = (key.as_ref(), value.as_ref());
        unsafe { sys::hostcall_kvstore_upsert(k.as_ptr(), k.len(), v.as_ptr(), v.len()) != 0 }
    }

    /// Appends `value` to the value of `key`, creating it: true if it was new.
    pub fn append(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> bool {
        let (k, v) = (key.as_ref(), value.as_ref());
        unsafe { sys::hostcall_kvstore_append(k.as_ptr(), k.len(), v.as_ptr(), v.len()) != 0 }
    }

    /// Removes `key`: true if it existed.
    pub fn remove(key: impl AsRef<[u8]>) -> bool {
        let k = key.as_ref();
        unsafe { sys::hostcall_kvstore_remove(k.as_ptr(), k.len()) != 0 }
    }
}

/// The app's configuration value called `key`: the manifest's `"env"`, or a
/// value set through the API (which wins). `None` when it is unset.
pub fn config(key: &str) -> Option<String> {
    let (mut ptr, mut len) = (std::ptr::null_mut(), 0);
    let found = unsafe { sys::hostcall_config_get(&mut ptr, &mut len, key.as_ptr(), key.len()) };
    let value = unsafe { sys::take_bytes(ptr, len) };
    if found != 0 {
        Some(lossy(value))
    } else {
        None
    }
}

/// Writes one line to the app's log (`viv logs APP`).
pub fn log(message: &str) {
    unsafe { sys::hostcall_debug(message.as_ptr(), message.len()) }
}

/// 64 bits from the host's cryptographically secure generator.
pub fn random_u64() -> u64 {
    unsafe { sys::hostcall_rng_next_u64() }
}
