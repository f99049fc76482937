//! What every handler reads and returns: a [`Request`] parsed once by the router, and the
//! [`Reply`] the router sends.

use bytes::Bytes;
use hyper::Method;
use hyper::header::HeaderMap;
use serde_json::Value;
use std::collections::BTreeMap;

/// A request, read whole (up to the router's size limit) and parsed.
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The path, without the query.
    pub(crate) path: String,
    /// The decoded query parameters.
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The decoded form body of a token or STS request (empty for the other endpoints).
    pub(crate) form: BTreeMap<String, String>,
    /// `client-request-id` (or `x-ms-client-request-id`) when sent and at most 64 characters,
    /// else a fresh UUID.
    pub(crate) correlation_id: String,
}

impl Request {
    /// The `Authorization` header, if it is valid text.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.headers
            .get(hyper::header::AUTHORIZATION)?
            .to_str()
            .ok()
    }

    /// The token of a `Bearer` `Authorization` header.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let (scheme, token) = self.authorization()?.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// The path's segments after the leading `/`.
    pub(crate) fn segments(&self) -> Vec<&str> {
        self.path.split('/').skip(1).collect()
    }
}

/// A response about to be sent.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Reply {
    /// No headers, no body.
    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// `body` with that `content-type`.
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            body: body.into(),
            ..Reply::empty(status)
        }
        .header("content-type", content_type)
    }

    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply::new(status, "application/json; charset=utf-8", body.to_string())
    }

    pub(crate) fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// That status with its reason phrase as a plain-text body (`503 Service Unavailable`).
    pub(crate) fn status(status: u16) -> Reply {
        Reply::text(status, reason(status))
    }

    /// Adds a header (several with one name are all sent).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// `503 Service Unavailable`; `Error` stands for an unknown reason phrase.
pub(crate) fn reason(status: u16) -> String {
    let r = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!("{status} {r}")
}
