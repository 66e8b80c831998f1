//! The Carbon plaintext line: `prefix.path[;k=v...] value timestamp\n`.
//!
//! [`LineFormat`] validates and formats one line into a caller's buffer. The
//! [`Sender`](crate::Sender) uses it for every send; it is public so that
//! lines can be preformatted or checked without sending them.
//!
//! # Tag order
//! Tags are rendered in Carbon's canonical order: sorted by the `;k=v`
//! strings, which is how carbon-cache names a tagged series and what
//! carbon-c-relay hashes when it picks a destination. The Python graphyte
//! sorts by key instead; the two differ only when one key is a prefix of
//! another and the next character sorts before `=` (`a=x` and `a-b=y`: Carbon
//! and graphyte send `;a-b=y;a=x`, Python graphyte `;a=x;a-b=y`).
//!
//! Tags come from three places; for a key given more than once the later
//! source wins: the sender's default tags, tags written inline in the name
//! (`"requests;env=prod"`), then the tags passed to the call.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::timestamp::Timestamp;
use crate::validate::{self, Invalid, MAX_LINE_LEN};
use crate::value::{write_int, Value};

/// How a sender turns `(name, value, tags, timestamp)` into a line: the
/// prefix and the default tags, validated once.
///
/// ```
/// use graphyte::{LineFormat, Timestamp};
/// let format = LineFormat::new("system.web", &[("env", "prod")])?;
/// let mut buf = Vec::new();
/// format.format_into(&mut buf, "requests", &[("host", "a")], 42, Timestamp::from(12345))?;
/// assert_eq!(buf, b"system.web.requests;env=prod;host=a 42 12345\n");
/// # Ok::<(), graphyte::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct LineFormat {
    /// Empty, or the prefix followed by one `.`.
    prefix: String,
    /// Validated default tags, one per key (the last one given wins).
    tags: Vec<(String, String)>,
    /// The default tags as they go on the wire (`;env=prod;host=a`, empty
    /// if none): all a line gets when its call has no tags of its own.
    rendered_tags: String,
}

impl LineFormat {
    /// Validates a prefix (may be empty) and default tags.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(prefix: &str, tags: &[(K, V)]) -> Result<LineFormat> {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            validate::check_path(prefix)
                .map_err(|reason| invalid(prefix, Invalid::Path(reason)))?;
            format!("{prefix}.")
        };
        let mut owned: Vec<(String, String)> = Vec::with_capacity(tags.len());
        for (k, v) in tags {
            let (k, v) = (k.as_ref(), v.as_ref());
            validate::check_tag(k, v).map_err(|e| invalid("(default tags)", e))?;
            match owned.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.to_owned(),
                None => owned.push((k.to_owned(), v.to_owned())),
            }
        }
        // What the merge in `write_tags` makes of the default tags alone.
        let mut sorted: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sorted.sort_unstable_by(carbon_order);
        let mut rendered = Vec::new();
        write_tag_list(&mut rendered, &sorted);
        // Whole `str`s joined by ASCII: never lossy.
        let rendered_tags = String::from_utf8_lossy(&rendered).into_owned();
        Ok(LineFormat {
            prefix,
            tags: owned,
            rendered_tags,
        })
    }

    /// The prefix, without its trailing `.` (empty if none).
    pub fn prefix(&self) -> &str {
        self.prefix.strip_suffix('.').unwrap_or("")
    }

    /// Appends one complete line to `buf`, or leaves `buf` as it was and says
    /// why the line cannot be sent.
    pub fn format_into<V: Value>(
        &self,
        buf: &mut Vec<u8>,
        name: &str,
        tags: &[(&str, &str)],
        value: V,
        timestamp: Timestamp,
    ) -> Result<()> {
        self.format_tagged_into(buf, name, tags, value, timestamp)
    }

    /// [`format_into`](LineFormat::format_into) with tags of any string type
    /// (`&str`, `String`, ...).
    pub(crate) fn format_tagged_into<V: Value, K: AsRef<str>, T: AsRef<str>>(
        &self,
        buf: &mut Vec<u8>,
        name: &str,
        tags: &[(K, T)],
        value: V,
        timestamp: Timestamp,
    ) -> Result<()> {
        let start = buf.len();
        let result = self
            .write_head(buf, name, tags)
            .and_then(|()| write_tail(buf, name, value, timestamp));
        if result.is_err() {
            buf.truncate(start);
            return result;
        }
        check_line_len(buf, start, name)
    }

    /// [`format_into`](LineFormat::format_into) with no call tags, for a
    /// name that [`check_name`] accepted (the registry's series), with the
    /// timestamp of a [`Stamp`]: the path is not checked again and the
    /// timestamp is not formatted again. A name with inline tags still takes
    /// the long way (they are merged with the default tags and sorted), and
    /// so does an invalid timestamp (for its error); otherwise the line is
    /// the prefix, the name, the default tags as rendered once, a space, the
    /// value and the stamp's end. What the interval thread's drain writes for
    /// every series.
    pub(crate) fn format_checked_into<V: Value>(
        &self,
        buf: &mut Vec<u8>,
        name: &str,
        value: V,
        stamp: &Stamp,
    ) -> Result<()> {
        let Some(end) = stamp.end() else {
            return self.format_into(buf, name, &[], value, stamp.ts);
        };
        if name.as_bytes().contains(&b';') {
            return self.format_into(buf, name, &[], value, stamp.ts);
        }
        let start = buf.len();
        buf.reserve(self.prefix.len() + name.len() + self.rendered_tags.len() + 32 + end.len());
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(self.rendered_tags.as_bytes());
        buf.push(b' ');
        if let Err(reason) = value.write_value(buf) {
            buf.truncate(start);
            return Err(Error::InvalidValue {
                name: name.to_owned(),
                reason,
            });
        }
        buf.extend_from_slice(end);
        check_line_len(buf, start, name)
    }

    /// Appends what starts every line of `name` with `tags`: the prefix,
    /// the path and the tags in Carbon's order, then a space; checks the
    /// path and the tags.
    fn write_head<K: AsRef<str>, T: AsRef<str>>(
        &self,
        buf: &mut Vec<u8>,
        name: &str,
        tags: &[(K, T)],
    ) -> Result<()> {
        let (path, inline) = validate::split_name(name);
        validate::check_path(path).map_err(|reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.extend_from_slice(path.as_bytes());
        if inline.is_none() && tags.is_empty() {
            // Only the default tags (if any): already in order and checked.
            buf.extend_from_slice(self.rendered_tags.as_bytes());
        } else {
            self.write_tags(buf, name, inline, tags)?;
        }
        buf.push(b' ');
        Ok(())
    }

    /// The start of every line of `name` with `tags` (see
    /// [`Metric`](crate::Metric)), checked once; errors as `format_into`'s.
    pub(crate) fn head<K: AsRef<str>, T: AsRef<str>>(
        &self,
        name: &str,
        tags: &[(K, T)],
    ) -> Result<Box<[u8]>> {
        let mut head = Vec::new();
        self.write_head(&mut head, name, tags)?;
        // The shortest line it can start: one digit and a ten-digit timestamp.
        let shortest = head.len() + "0 1000000000\n".len();
        if shortest > MAX_LINE_LEN {
            return Err(Error::LineTooLong {
                name: name.to_owned(),
                len: shortest,
            });
        }
        Ok(head.into_boxed_slice())
    }

    /// Merges the default, inline and call tags, checks the latter two, and
    /// appends them in Carbon's order.
    fn write_tags<K: AsRef<str>, T: AsRef<str>>(
        &self,
        buf: &mut Vec<u8>,
        name: &str,
        inline: Option<&str>,
        call: &[(K, T)],
    ) -> Result<()> {
        let mut merged: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut put = |k, v| match merged.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => merged.push((k, v)),
        };
        if let Some(inline) = inline {
            for tag in validate::inline_tags(inline) {
                let (k, v) = tag.map_err(|e| invalid(name, e))?;
                put(k, v);
            }
        }
        for (k, v) in call {
            let (k, v) = (k.as_ref(), v.as_ref());
            validate::check_tag(k, v).map_err(|e| invalid(name, e))?;
            put(k, v);
        }
        merged.sort_unstable_by(carbon_order);
        write_tag_list(buf, &merged);
        Ok(())
    }
}

/// Checks that the line from `start` to the end of `buf` is at most
/// [`MAX_LINE_LEN`] long; removes it if not.
pub(crate) fn check_line_len(buf: &mut Vec<u8>, start: usize, name: &str) -> Result<()> {
    let len = buf.len() - start;
    if len > MAX_LINE_LEN {
        buf.truncate(start);
        return Err(Error::LineTooLong {
            name: name.to_owned(),
            len,
        });
    }
    Ok(())
}

/// A timestamp with what ends each of its lines (a space, the seconds and
/// the newline) rendered once, for the many lines of one drain.
pub(crate) struct Stamp {
    ts: Timestamp,
    /// The end, if the timestamp is valid; `len` bytes of `bytes` are used.
    bytes: [u8; 12],
    len: u8,
}

impl Stamp {
    /// The stamp of `ts` (an invalid one keeps only `ts`, for its error).
    pub(crate) fn new(ts: Timestamp) -> Stamp {
        let mut stamp = Stamp {
            ts,
            bytes: [0; 12],
            len: 0,
        };
        if let Ok(secs) = ts.checked() {
            let mut end = Vec::with_capacity(12);
            end.push(b' ');
            write_int(&mut end, secs);
            end.push(b'\n');
            stamp.bytes[..end.len()].copy_from_slice(&end);
            stamp.len = end.len() as u8;
        }
        stamp
    }

    /// The timestamp's seconds, as [`Timestamp::as_secs`] gives them.
    pub(crate) fn secs(&self) -> i64 {
        self.ts.as_secs()
    }

    fn end(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.bytes[..usize::from(self.len)])
    }
}

/// Appends what ends every line after its head: the value, a space, the
/// timestamp and the newline; checks the timestamp and the value (in that
/// order). Leaves `buf` as it was on error.
pub(crate) fn write_tail<V: Value>(
    buf: &mut Vec<u8>,
    name: &str,
    value: V,
    timestamp: Timestamp,
) -> Result<()> {
    let ts = timestamp
        .checked()
        .map_err(|reason| Error::InvalidTimestamp {
            name: name.to_owned(),
            timestamp: timestamp.as_secs(),
            reason,
        })?;
    let start = buf.len();
    if let Err(reason) = value.write_value(buf) {
        buf.truncate(start);
        return Err(Error::InvalidValue {
            name: name.to_owned(),
            reason,
        });
    }
    buf.push(b' ');
    write_int(buf, ts);
    buf.push(b'\n');
    Ok(())
}

/// Carbon's canonical tag order: by the `k=v` strings (the `;` before each
/// is common to all). Keys are unique by then, and a key has no `=`, so no
/// two tags compare equal.
fn carbon_order(a: &(&str, &str), b: &(&str, &str)) -> Ordering {
    let a = a.0.bytes().chain([b'=']).chain(a.1.bytes());
    let b = b.0.bytes().chain([b'=']).chain(b.1.bytes());
    a.cmp(b)
}

/// Appends `;k=v` for each tag, in the order given.
fn write_tag_list(buf: &mut Vec<u8>, tags: &[(&str, &str)]) {
    for &(k, v) in tags {
        buf.push(b';');
        buf.extend_from_slice(k.as_bytes());
        buf.push(b'=');
        buf.extend_from_slice(v.as_bytes());
    }
}

/// Turns a validation failure into the public error.
fn invalid(name: &str, e: Invalid<'_>) -> Error {
    match e {
        Invalid::Path(reason) => Error::InvalidName {
            name: name.to_owned(),
            reason,
        },
        Invalid::Tag { key, value, reason } => Error::InvalidTag {
            name: name.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        },
    }
}

/// Checks a metric name (path and inline tags) without formatting a line.
///
/// ```
/// assert!(graphyte::check_name("web.requests;env=prod").is_ok());
/// let err = graphyte::check_name("web..requests").unwrap_err();
/// assert!(err.to_string().contains("empty segment"));
/// ```
pub fn check_name(name: &str) -> Result<()> {
    validate::check_name(name).map_err(|e| invalid(name, e))
}

#[cfg(test)]
mod tests;
