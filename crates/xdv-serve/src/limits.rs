//! The service's limits on clients: per-tenant token buckets on requests and on VHM creations
//! (as Firecracker's rate limiters meter I/O), and a per-tenant count of open event streams.
//! They use the wall clock, which only the network side sees: nothing here reaches the core.

use crate::api::{Problem, Who};
use axum::http::StatusCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `burst` saved.
#[derive(Debug)]
struct Bucket {
    rate: u32,
    burst: u32,
    /// Tokens, in millionths.
    micros: u64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            micros: u64::from(burst) * 1_000_000,
            last: Instant::now(),
        }
    }

    /// Takes one token; the seconds until one is there when none is.
    fn take(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_micros() as u64;
        self.last = now;
        let cap = u64::from(self.burst) * 1_000_000;
        self.micros = (self.micros + elapsed * u64::from(self.rate)).min(cap);
        if self.micros >= 1_000_000 {
            self.micros -= 1_000_000;
            return Ok(());
        }
        let missing = 1_000_000 - self.micros;
        Err(missing
            .div_ceil(u64::from(self.rate).max(1) * 1_000_000)
            .max(1))
    }
}

/// Per-requester limits (the operator's requests are limited too, by their own buckets).
pub(crate) struct Limits {
    pub(crate) max_body_bytes: u64,
    max_streams: u32,
    requests: Vec<Mutex<Bucket>>,
    creates: Vec<Mutex<Bucket>>,
    streams: Vec<Arc<AtomicU32>>,
}

/// An open event stream, counted until dropped.
pub(crate) struct StreamGuard(Arc<AtomicU32>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    /// Limits for `tenants` tenants and the operator, from `[serve]`.
    pub(crate) fn new(spec: &xdv_manifest::ServeSpec, tenants: usize) -> Self {
        let n = tenants + 1;
        Self {
            max_body_bytes: spec.max_body_bytes,
            max_streams: spec.max_streams,
            requests: (0..n)
                .map(|_| Mutex::new(Bucket::new(spec.requests_per_s, spec.request_burst)))
                .collect(),
            creates: (0..n)
                .map(|_| Mutex::new(Bucket::new(spec.creates_per_s, spec.create_burst)))
                .collect(),
            streams: (0..n).map(|_| Arc::new(AtomicU32::new(0))).collect(),
        }
    }

    fn slot(who: Who) -> usize {
        match who {
            Who::Operator => 0,
            Who::Tenant(t) => t as usize + 1,
        }
    }

    fn limited(what: &str, retry: u64) -> Problem {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{what}: over the rate limit; retry in {retry} s"),
        )
        .retry_after(retry)
    }

    /// Counts a request against `who`'s request bucket.
    pub(crate) fn request(&self, who: Who) -> Result<(), Problem> {
        let mut b = self.requests[Self::slot(who)]
            .lock()
            .expect("never poisoned");
        b.take().map_err(|retry| Self::limited("requests", retry))
    }

    /// Counts a VHM creation against `who`'s creation bucket.
    pub(crate) fn create(&self, who: Who) -> Result<(), Problem> {
        let mut b = self.creates[Self::slot(who)]
            .lock()
            .expect("never poisoned");
        b.take()
            .map_err(|retry| Self::limited("VHM creations", retry))
    }

    /// Opens one event stream for `who`, if it has fewer than the most open.
    pub(crate) fn open_stream(&self, who: Who) -> Result<StreamGuard, Problem> {
        let n = &self.streams[Self::slot(who)];
        let max = self.max_streams;
        n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            (c < max).then_some(c + 1)
        })
        .map_err(|_| {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {max} event streams may be open at once"),
            )
        })?;
        Ok(StreamGuard(n.clone()))
    }
}
