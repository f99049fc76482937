//! The request log: one [`RequestRecord`] per request, the source of every counter.

use crate::faults::Endpoint;
use crate::util::rfc3339;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// One request as seen by the emulator.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The endpoint family.
    pub endpoint: Endpoint,
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// `client_id` of a token request, or `appid` of the bearer token of a resource request.
    pub client_id: Option<String>,
    /// `scope` of a token request, or `aud` of the bearer token of a resource request.
    pub scope: Option<String>,
    /// Status answered; 0 while the request is pending and when no response was sent
    /// ([`Fault::Hang`](crate::Fault::Hang), [`Fault::Reset`](crate::Fault::Reset)).
    pub status: u16,
    /// The decoded form body (token endpoint only).
    pub form: BTreeMap<String, String>,
    /// Arrival time.
    pub at: OffsetDateTime,
    pub(crate) seq: u64,
}

impl RequestRecord {
    /// The control API's JSON form (`GET /_emulator/requests`): the `client_assertion` form
    /// field left out, `at` in RFC 3339.
    pub(crate) fn to_json(&self) -> Value {
        let form: BTreeMap<_, _> = self
            .form
            .iter()
            .filter(|(k, _)| k.as_str() != "client_assertion")
            .collect();
        json!({
            "endpoint": self.endpoint.name(),
            "method": self.method,
            "path": self.path,
            "client_id": self.client_id,
            "scope": self.scope,
            "status": self.status,
            "form": form,
            "at": rfc3339(self.at),
        })
    }
}

/// The records, oldest first.
#[derive(Default)]
pub(crate) struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
    seq: AtomicU64,
}

impl RequestLog {
    /// Appends `record` (status 0); returns the number to [`set_status`](Self::set_status) it by.
    pub(crate) fn record(&self, mut record: RequestRecord) -> u64 {
        record.seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let seq = record.seq;
        self.records.lock().unwrap().push(record);
        seq
    }

    /// Sets the status of the record numbered `seq` (unless the log was cleared since).
    pub(crate) fn set_status(&self, seq: u64, status: u16) {
        let mut records = self.records.lock().unwrap();
        if let Some(r) = records.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = status;
        }
    }

    pub(crate) fn all(&self) -> Vec<RequestRecord> {
        self.records.lock().unwrap().clone()
    }

    /// How many records `matches` accepts.
    pub(crate) fn count(&self, matches: impl Fn(&RequestRecord) -> bool) -> usize {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches(r))
            .count()
    }

    pub(crate) fn clear(&self) {
        self.records.lock().unwrap().clear();
    }
}
