//! Encodings: the bytes that go on the wire for a batch of complete
//! plaintext lines, and which lines a partly written batch delivered. Pure:
//! no I/O, no clock.
//!
//! Lines are formatted and queued as Carbon plaintext; the encoding turns a
//! batch into what the connection writes. [`Plaintext`] writes the lines as
//! they are (Carbon's line receiver, port 2003). A framed encoding (such as
//! Carbon's pickle receiver, port 2004) implements [`Encoding`] by building
//! frames in the scratch buffer and reporting, after a failed write, only
//! the lines of frames that went out whole.

use crate::transport::whole_lines;

/// Turns batches of plaintext lines into wire bytes.
pub(crate) trait Encoding: Send + Sync {
    /// The bytes to write for `lines` (one or more complete `\n`-terminated
    /// plaintext lines); may build them in `scratch`.
    fn encode<'a>(&self, lines: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8];

    /// After a write of `encode(lines)` failed having handed over its first
    /// `written` bytes: the leading lines of `lines` that were delivered
    /// whole, which must not be sent again.
    fn delivered(&self, lines: &[u8], written: usize) -> Delivered;
}

/// The leading part of a batch that was delivered whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// Its length in bytes of plaintext lines.
    pub(crate) bytes: usize,
    /// How many lines it holds.
    pub(crate) lines: usize,
}

/// Carbon's plaintext protocol: the lines themselves.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plaintext;

impl Encoding for Plaintext {
    #[inline]
    fn encode<'a>(&self, lines: &'a [u8], _scratch: &'a mut Vec<u8>) -> &'a [u8] {
        lines
    }

    fn delivered(&self, lines: &[u8], written: usize) -> Delivered {
        let (bytes, lines) = whole_lines(lines, written);
        Delivered { bytes, lines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_the_lines_and_delivers_whole_lines_only() {
        let batch = b"a 1 1\nb 2 2\nc 3 3\n";
        let mut scratch = Vec::new();
        assert_eq!(Plaintext.encode(batch, &mut scratch), batch);
        assert!(scratch.is_empty(), "no copy");
        let at = |written| Plaintext.delivered(batch, written);
        assert_eq!(at(0), Delivered { bytes: 0, lines: 0 });
        assert_eq!(at(5), Delivered { bytes: 0, lines: 0 }, "newline not out");
        assert_eq!(at(6), Delivered { bytes: 6, lines: 1 });
        assert_eq!(
            at(17),
            Delivered {
                bytes: 12,
                lines: 2
            }
        );
        assert_eq!(
            at(18),
            Delivered {
                bytes: 18,
                lines: 3
            }
        );
    }
}
