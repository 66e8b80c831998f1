//! An in-memory transport for tests.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Transport;

/// Keeps every batch in memory instead of sending it: a test double for
/// code that sends metrics. Clones share the same buffer, so keep one clone
/// to read what the sender "sent".
///
/// ```
/// let capture = graphyte::CaptureTransport::new();
/// let sender = graphyte::Sender::new(
///     graphyte::Config::new("unused").prefix("app").transport(capture.clone()),
/// )?;
/// sender.send_at("requests", 3, 1_700_000_000)?;
/// assert_eq!(capture.lines(), ["app.requests 3 1700000000"]);
/// # Ok::<(), graphyte::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CaptureTransport {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    batches: usize,
    fail: Option<io::ErrorKind>,
}

impl CaptureTransport {
    /// An empty capture.
    pub fn new() -> CaptureTransport {
        CaptureTransport::default()
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A test that panicked while holding the lock must not hide what was captured.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything captured so far, as one string.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    /// The captured lines, without their `\n`.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// How many batches [`Transport::send`] received (one per synchronous send).
    pub fn batches(&self) -> usize {
        self.lock().batches
    }

    /// Returns the captured lines and clears the capture.
    pub fn take_lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut self.lock().bytes);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Makes every send fail with `kind` (`Some`) or succeed again (`None`),
    /// to test how code behaves while the server is down.
    pub fn fail_with(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail = kind;
    }
}

impl Transport for CaptureTransport {
    fn send(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut captured = self.lock();
        if let Some(kind) = captured.fail {
            return Err(io::Error::new(kind, "capture transport set to fail"));
        }
        captured.bytes.extend_from_slice(lines);
        captured.batches += 1;
        Ok(())
    }

    fn address(&self) -> String {
        "capture".to_owned()
    }
}
