//! The rules a metric path and its tags must follow to make exactly one valid
//! Carbon line that Carbon stores under the name the caller meant.
//!
//! The one definition of these rules for [graphyte](https://docs.rs/graphyte):
//! the runtime checks names with it, and `graphyte-macros` refuses bad literal
//! names at compile time with it, so the compile error and the runtime error
//! give the same reason. Use them through `graphyte` (`graphyte::check_name`);
//! this crate is shared the way `tracing-core` is, and has no dependencies.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Longest line Carbon's plaintext receiver accepts, in bytes, newline included.
/// Carbon closes the connection on a longer line and loses the rest of the stream.
pub const MAX_LINE_LEN: usize = 16384;

/// What is wrong with a name (path plus optional inline `;k=v` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid<'a> {
    /// The path part is invalid.
    Path(&'static str),
    /// One of the tags is invalid.
    Tag {
        /// The tag key (empty if the tag had no `=`).
        key: &'a str,
        /// The tag value.
        value: &'a str,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// Checks characters that may never appear anywhere in a line's fields.
fn check_chars(
    s: &str,
    whitespace: &'static str,
    control: &'static str,
) -> Result<(), &'static str> {
    for c in s.chars() {
        if c.is_whitespace() {
            return Err(whitespace);
        }
        if c.is_control() {
            return Err(control);
        }
    }
    Ok(())
}

/// Checks a metric path (no tags): non-empty, no whitespace or control
/// characters, no `;` and no empty `.`-separated segment.
///
/// One pass over the bytes; only names with non-ASCII characters take a
/// second, per-character pass for Unicode whitespace and controls.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    const WHITESPACE: &str = "must not contain whitespace";
    const CONTROL: &str = "must not contain control characters";
    if path.is_empty() {
        return Err("must not be empty");
    }
    let mut at_segment_start = true;
    let mut empty_segment = false;
    let mut non_ascii = false;
    for &b in path.as_bytes() {
        match b {
            b'.' => {
                empty_segment |= at_segment_start;
                at_segment_start = true;
                continue;
            }
            // What char::is_whitespace accepts in ASCII, then the other controls.
            b'\t'..=b'\r' | b' ' => return Err(WHITESPACE),
            0..=0x1f | 0x7f => return Err(CONTROL),
            b';' => return Err("must not contain ';' outside of tags"),
            0x80.. => non_ascii = true,
            _ => {}
        }
        at_segment_start = false;
    }
    if non_ascii {
        check_chars(path, WHITESPACE, CONTROL)?;
    }
    if empty_segment || at_segment_start {
        return Err("must not contain an empty segment ('..', or a leading or trailing '.')");
    }
    Ok(())
}

/// Checks a tag key: non-empty, none of `; ! ^ =`, no whitespace or control
/// characters, and not `name`, which Graphite reserves for the path (carbon
/// replaces a `name` tag with the path, so `x;name=a` and `x;name=b` would
/// be one series, each overwriting the other).
pub fn check_tag_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("tag key must not be empty");
    }
    if key == "name" {
        return Err("tag key 'name' is reserved by Graphite for the metric's path");
    }
    check_chars(
        key,
        "tag key must not contain whitespace",
        "tag key must not contain control characters",
    )?;
    if key.contains([';', '!', '^', '=']) {
        return Err("tag key must not contain ';', '!', '^' or '='");
    }
    Ok(())
}

/// Checks a tag value: non-empty, no `;`, not starting with `~`, no
/// whitespace or control characters.
pub fn check_tag_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("tag value must not be empty");
    }
    check_chars(
        value,
        "tag value must not contain whitespace",
        "tag value must not contain control characters",
    )?;
    if value.contains(';') {
        return Err("tag value must not contain ';'");
    }
    if value.starts_with('~') {
        return Err("tag value must not start with '~'");
    }
    Ok(())
}

/// Checks one tag.
pub fn check_tag<'a>(key: &'a str, value: &'a str) -> Result<(), Invalid<'a>> {
    check_tag_key(key)
        .and_then(|()| check_tag_value(value))
        .map_err(|reason| Invalid::Tag { key, value, reason })
}

/// Splits `path;k=v;k2=v2` into the path and the raw tag part after the first `;`.
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.bytes().position(|b| b == b';') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    }
}

/// Splits one inline `k=v` tag at its first `=`.
pub fn split_tag(tag: &str) -> Result<(&str, &str), Invalid<'_>> {
    tag.split_once('=').ok_or(Invalid::Tag {
        key: tag,
        value: "",
        reason: "tag must have the form key=value",
    })
}

/// The inline tags of a name (the raw part after its first `;`, as
/// [`split_name`] returns it), each split at its first `=` and checked.
pub fn inline_tags(tags: &str) -> impl Iterator<Item = Result<(&str, &str), Invalid<'_>>> {
    tags.split(';').map(|tag| {
        let (key, value) = split_tag(tag)?;
        check_tag(key, value)?;
        Ok((key, value))
    })
}

/// Checks a whole name: its path and any inline `;k=v` tags.
pub fn check_name(name: &str) -> Result<(), Invalid<'_>> {
    let (path, tags) = split_name(name);
    check_path(path).map_err(Invalid::Path)?;
    if let Some(tags) = tags {
        for tag in inline_tags(tags) {
            tag?;
        }
    }
    Ok(())
}

/// Writes why `name` was refused: the `Display` text of graphyte's
/// `Error::InvalidName` (for [`Invalid::Path`]) and `Error::InvalidTag` (for
/// [`Invalid::Tag`]), which is also the compile error of the macros.
pub fn write_message(
    out: &mut dyn core::fmt::Write,
    name: &str,
    e: Invalid<'_>,
) -> core::fmt::Result {
    match e {
        Invalid::Path(reason) => write!(out, "invalid metric name {name:?}: {reason}"),
        Invalid::Tag { key, value, reason } => write!(
            out,
            "invalid tag {key:?}={value:?} on metric {name:?}: {reason}"
        ),
    }
}
