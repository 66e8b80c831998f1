//! An in-memory transport for tests.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::{SendError, Transport};

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
        lines_of(&self.lock().bytes)
    }

    /// How many batches [`Transport::send`] received (one per synchronous send).
    pub fn batches(&self) -> usize {
        self.lock().batches
    }

    /// Returns the captured lines and clears the capture.
    pub fn take_lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut self.lock().bytes);
        lines_of(&bytes)
    }

    /// Makes every send fail with `kind` (`Some`) or succeed again (`None`),
    /// to test how code behaves while the server is down.
    pub fn fail_with(&self, kind: Option<io::ErrorKind>) {
        self.lock().fail = kind;
    }
}

/// The lines of `bytes` (lossy UTF-8), without their `\n`.
fn lines_of(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

impl Transport for CaptureTransport {
    fn send(&mut self, lines: &[u8], _deadline: Instant) -> Result<(), SendError> {
        let mut captured = self.lock();
        if let Some(kind) = captured.fail {
            return Err(io::Error::new(kind, "capture transport set to fail").into());
        }
        captured.bytes.extend_from_slice(lines);
        captured.batches += 1;
        Ok(())
    }

    fn address(&self) -> String {
        "capture".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::CaptureTransport;
    use crate::transport::Transport;

    #[test]
    fn lines_and_take_lines_agree() {
        let capture = CaptureTransport::new();
        let deadline = std::time::Instant::now();
        capture.clone().send(b"a 1 1\nb 2 2\n", deadline).unwrap();
        capture.clone().send(b"c \xff 3\r\n", deadline).unwrap();
        let lines = capture.lines();
        assert_eq!(lines, ["a 1 1", "b 2 2", "c \u{fffd} 3"]);
        assert_eq!(capture.batches(), 2);
        assert_eq!(capture.take_lines(), lines);
        assert!(capture.lines().is_empty());
        assert_eq!(capture.contents(), "");
    }
}
