//! From a `metrics` key (a name and labels) to a Graphite series name
//! (`path;k=v;...`, tags in Carbon's canonical order). The name and labels
//! come from code the user did not write, so nothing here can fail: what
//! Graphite cannot store is replaced, and the caller logs each distinct
//! change once.
//!
//! The rules:
//! * **Path** (the key's name): every character other than `A-Z a-z 0-9 - _
//!   : # .` becomes `_` (what carbon-c-relay does to paths, so a series has
//!   one name with or without a relay in front of the caches); runs of `.`
//!   become one, and leading and trailing `.` go; an empty path becomes `_`.
//! * **Label keys**: whitespace, control characters, `;`, `!`, `^` and `=`
//!   become `_`; an empty key becomes `_`; `name` (Graphite's tag for the
//!   path: carbon would merge the series) becomes `_name`.
//! * **Label values**: whitespace, control characters and `;` become `_`; a
//!   leading `~` becomes `_`; a label with an empty value is left out (as
//!   Prometheus treats it: no value, no label).
//! * Labels are written in Carbon's canonical order (sorted by `k=v`); for a
//!   key given twice (after the replacements) the later wins.

use std::borrow::Cow;

/// The Graphite name of a key, and whether anything had to be changed.
#[cfg(test)]
pub(super) struct Named {
    pub(super) name: String,
    pub(super) changed: bool,
}

fn path_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '#' | '.')
}

/// The path as Graphite can store it.
fn path(name: &str) -> Cow<'_, str> {
    let clean = name.chars().all(path_char_ok)
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.is_empty();
    if clean {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if path_char_ok(c) { c } else { '_' };
        if c == '.' && (out.is_empty() || out.ends_with('.')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('.') {
        out.pop();
    }
    if out.is_empty() {
        out.push('_');
    }
    Cow::Owned(out)
}

fn bad_in_tag(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == ';'
}

fn tag_key(key: &str) -> Cow<'_, str> {
    let bad = |c: char| bad_in_tag(c) || matches!(c, '!' | '^' | '=');
    if key.is_empty() {
        return Cow::Borrowed("_");
    }
    // Graphite's own tag for the path: carbon would merge the series.
    if key == "name" {
        return Cow::Borrowed("_name");
    }
    if !key.chars().any(bad) {
        return Cow::Borrowed(key);
    }
    Cow::Owned(key.chars().map(|c| if bad(c) { '_' } else { c }).collect())
}

/// `None` for an empty value: the label is left out.
fn tag_value(value: &str) -> Option<Cow<'_, str>> {
    if value.is_empty() {
        return None;
    }
    if !value.chars().any(bad_in_tag) && !value.starts_with('~') {
        return Some(Cow::Borrowed(value));
    }
    let mut out: String = value
        .chars()
        .map(|c| if bad_in_tag(c) { '_' } else { c })
        .collect();
    if out.starts_with('~') {
        out.replace_range(..1, "_");
    }
    Some(Cow::Owned(out))
}

/// Labels kept on the stack: more spill into a `Vec`.
const STACK_LABELS: usize = 8;

/// The Graphite name of `name` with `labels`.
#[cfg(test)]
pub(super) fn graphite_name<'a>(
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Named {
    let mut out = String::new();
    let changed = graphite_name_into(&mut out, name, labels);
    Named { name: out, changed }
}

thread_local! {
    /// Where the recorder builds names: no allocation per call.
    static BUFFER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Calls `f` with the Graphite name of `name` with `labels` (built in a
/// buffer of the thread's) and whether anything had to be changed.
pub(super) fn with_graphite_name<'a, R>(
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    f: impl FnOnce(&str, bool) -> R,
) -> R {
    // A logger that records through the facade may come back here from
    // within `f`: that call builds its name in a `String` of its own.
    let mut f = Some(f);
    let mut labels = Some(labels);
    let done = BUFFER
        .try_with(|buffer| {
            let mut buffer = buffer.try_borrow_mut().ok()?;
            buffer.clear();
            let changed = graphite_name_into(&mut buffer, name, labels.take()?);
            Some((f.take()?)(&buffer, changed))
        })
        .ok()
        .flatten();
    match done {
        Some(r) => r,
        None => {
            let mut out = String::new();
            let changed = graphite_name_into(&mut out, name, labels.into_iter().flatten());
            match f {
                Some(f) => f(&out, changed),
                None => unreachable!("f is taken only when it runs"),
            }
        }
    }
}

/// Whether `graphite` is the Graphite name of `name` with `labels`, for a
/// `graphite` that this module wrote (clean, tags in Carbon's order),
/// decided without writing the key's name: the path is `name` byte for
/// byte, and the labels are, as `k=v` texts, the name's tags (each tag
/// once, all of them). A stored tag is clean, so a label equal to one as text
/// is written unchanged, except for a key holding `=` (a stored key never
/// does: the split at the first `=` would mislead), which is refused.
pub(super) fn key_is_name<'a>(
    graphite: &str,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    let graphite = graphite.as_bytes();
    let name = name.as_bytes();
    if graphite.len() < name.len() || !same(&graphite[..name.len()], name) {
        return false;
    }
    let tags = &graphite[name.len()..];
    // Where each tag is: (start, end) in `tags`, each after a `;`.
    let mut at = [(0usize, 0usize); MAX_KEY_TAGS];
    let mut count = 0;
    if !tags.is_empty() {
        if tags[0] != b';' {
            return false;
        }
        let mut start = 1;
        for i in 1..=tags.len() {
            if i == tags.len() || tags[i] == b';' {
                if count == MAX_KEY_TAGS {
                    return false;
                }
                at[count] = (start, i);
                count += 1;
                start = i + 1;
            }
        }
    }
    // Which tags a label was found as: each at most once (a key given
    // twice is refused), all of them in the end.
    let mut found = 0u32;
    for (k, v) in labels {
        let (k, v) = (k.as_bytes(), v.as_bytes());
        if k.contains(&b'=') {
            return false;
        }
        let hit = at[..count].iter().position(|&(s, e)| {
            let tag = &tags[s..e];
            tag.len() == k.len() + 1 + v.len()
                && tag[k.len()] == b'='
                && same(&tag[..k.len()], k)
                && same(&tag[k.len() + 1..], v)
        });
        match hit {
            Some(i) if found & (1 << i) == 0 => found |= 1 << i,
            _ => return false,
        }
    }
    found.count_ones() as usize == count
}

/// Tags of a name [`key_is_name`] compares; a name with more takes the
/// long way.
const MAX_KEY_TAGS: usize = 16;

/// Whether two byte strings are equal; short ones compared as words
/// (overlapping at the end), without a call to `memcmp`.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => {
            let half = |x: &[u8], at: usize| {
                let mut w = [0; 4];
                w.copy_from_slice(&x[at..at + 4]);
                u32::from_le_bytes(w)
            };
            half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
        }
        8..=16 => word_at(a) == word_at(b) && word_at(&a[n - 8..]) == word_at(&b[n - 8..]),
        _ => a == b,
    }
}

/// Whether an ASCII byte is one that a tag key or value cannot hold as is
/// (control characters, whitespace, `;`): the definition the word checks
/// below are tested against.
#[cfg(test)]
const fn bad_tag_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b' ' || b == b';'
}

/// Which bytes the quick checks pass: a table each, so that a byte costs
/// one load instead of a chain of comparisons (the path's; the key and
/// value tables define what the word checks must find). Non-ASCII bytes
/// pass none (text with them takes the long way).
macro_rules! byte_table {
    (|$b:ident| $ok:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 128 {
            let $b = i as u8;
            table[i] = $ok;
            i += 1;
        }
        table
    }};
}
static PATH_BYTE: [bool; 256] =
    byte_table!(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'#' | b'.'));
#[cfg(test)]
static KEY_BYTE: [bool; 256] =
    byte_table!(|b| !bad_tag_byte(b) && !matches!(b, b'!' | b'^' | b'='));
#[cfg(test)]
static VALUE_BYTE: [bool; 256] = byte_table!(|b| !bad_tag_byte(b));

/// Whether `name` is a clean path (what [`path`] leaves unchanged), checked
/// on its bytes: the common case, without decoding characters. One pass
/// without an early exit, so that the loop has no branch to mispredict.
fn clean_path(name: &str) -> bool {
    let mut bad = false;
    // A dot at the start is as bad as one after a dot.
    let mut after_dot = true;
    for &b in name.as_bytes() {
        let dot = b == b'.';
        bad |= !PATH_BYTE[usize::from(b)] | (dot & after_dot);
        after_dot = dot;
    }
    // Also refuses the empty name (`after_dot` still true).
    !bad && !after_dot
}

/// Eight bytes at a time: a word with `0x01` in every byte, and one with
/// `0x80`.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Non-zero if some byte of `w` is below `n` (`n` at most 0x80).
const fn has_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & HIGHS
}

/// Non-zero if some byte of `w` is `b`.
const fn has_byte(w: u64, b: u8) -> u64 {
    has_below(w ^ (ONES * b as u64), 1)
}

/// Non-zero if some byte of `w` is one a tag value cannot hold as is:
/// non-ASCII (the long way decides), a control character or space (below
/// 0x21), DEL or `;` (what [`VALUE_BYTE`] refuses).
const fn bad_value_word(w: u64) -> u64 {
    (w & HIGHS) | has_below(w, 0x21) | has_byte(w, 0x7f) | has_byte(w, b';')
}

/// What a tag key cannot hold besides: `!`, `^` and `=` ([`KEY_BYTE`]).
const fn bad_key_word(w: u64) -> u64 {
    bad_value_word(w) | has_byte(w, b'!') | has_byte(w, b'^') | has_byte(w, b'=')
}

/// Whether `bad` finds nothing in `text`, read eight bytes at a time as
/// words (little-endian, so byte `i` is bits `8i..8i + 8`). Every byte is
/// in some word: a text of eight bytes or more ends with a word that
/// overlaps the one before it, a shorter one is read as two overlapping
/// halves or, below four bytes, as its first, middle and last byte, and
/// the rest of such a word is `a`, which every check passes. No copy of
/// variable length, which would cost a call and a stalled load.
#[inline]
fn words_pass(text: &str, bad: fn(u64) -> u64) -> bool {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let found = if n >= 8 {
        let mut found = 0;
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            found |= bad(word_at(word));
        }
        if !words.remainder().is_empty() {
            found |= bad(word_at(&bytes[n - 8..]));
        }
        found
    } else if n >= 4 {
        let half = |at: usize| {
            let mut w = [0; 4];
            w.copy_from_slice(&bytes[at..at + 4]);
            u64::from(u32::from_le_bytes(w))
        };
        bad(half(0) | half(n - 4) << 32)
    } else if n > 0 {
        let padded = u64::from_le_bytes([b'a'; 8]) & !0xff_ffff;
        let w = u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16;
        bad(padded | w)
    } else {
        0
    };
    found == 0
}

/// The eight bytes at the start of `bytes` as a word.
#[inline]
fn word_at(bytes: &[u8]) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(w)
}

/// Whether a label is kept as it is: what [`tag_key`] and [`tag_value`]
/// leave unchanged, for ASCII text (anything else takes the long way).
/// Checked eight bytes at a time (the tables, a byte at a time, are the
/// definition the tests compare this with).
fn clean_label(key: &str, value: &str) -> bool {
    !key.is_empty()
        && key != "name"
        && words_pass(key, bad_key_word)
        && !value.is_empty()
        && !value.starts_with('~')
        && words_pass(value, bad_value_word)
}

/// Writes the Graphite name of `name` with `labels` to `out`; says whether
/// anything had to be changed.
pub(super) fn graphite_name_into<'a>(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> bool {
    if clean_name_into(out, name, labels.clone()) {
        return false;
    }
    rewritten_name_into(out, name, labels)
}

/// The common case: a clean name with at most [`STACK_LABELS`] clean
/// labels, no key twice, needs no rewriting, only the labels sorted. Writes
/// it and returns true if it is that case; otherwise writes nothing.
fn clean_name_into<'a>(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> bool {
    if !clean_path(name) {
        return false;
    }
    // Up to two labels, the most common keys: at most one comparison to
    // order them, and no array of labels to fill.
    let mut first = labels.clone();
    match (first.next(), first.next(), first.next()) {
        (None, _, _) => {
            out.push_str(name);
            true
        }
        (Some(a), None, _) => {
            if !clean_label(a.0, a.1) {
                return false;
            }
            write_name(out, name, &[a]);
            true
        }
        (Some(a), Some(b), None) => {
            if !clean_label(a.0, a.1) || !clean_label(b.0, b.1) || a.0 == b.0 {
                return false;
            }
            let pair = if carbon_order(a, b).is_le() {
                [a, b]
            } else {
                [b, a]
            };
            write_name(out, name, &pair);
            true
        }
        _ => clean_tags_into(out, name, labels),
    }
}

/// Writes `name` and `tags` (clean, in Carbon's order) as `name;k=v;...`.
fn write_name(out: &mut String, name: &str, tags: &[(&str, &str)]) {
    out.reserve(
        name.len()
            + tags
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    out.push_str(name);
    for (k, v) in tags {
        out.push(';');
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// [`clean_name_into`] for three labels or more, the path checked already.
fn clean_tags_into<'a>(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    let mut tags = [("", ""); STACK_LABELS];
    let mut n = 0;
    for (k, v) in labels {
        if n == STACK_LABELS || !clean_label(k, v) || tags[..n].iter().any(|&(key, _)| key == k) {
            return false;
        }
        tags[n] = (k, v);
        n += 1;
    }
    let tags = &mut tags[..n];
    // Carbon's canonical order: by the `k=v` strings (no two are equal:
    // the keys differ).
    tags.sort_unstable_by(|a, b| carbon_order((a.0, a.1), (b.0, b.1)));
    write_name(out, name, tags);
    true
}

/// Carbon's order of two tags: by their `k=v` strings. Compared a part at
/// a time, not a byte at a time: the keys' common length, then the values
/// if the keys are equal; only where one key is a prefix of the other do
/// the `=` and what follows decide.
fn carbon_order(a: (&str, &str), b: (&str, &str)) -> std::cmp::Ordering {
    let (ka, kb) = (a.0.as_bytes(), b.0.as_bytes());
    let common = ka.len().min(kb.len());
    match ka[..common].cmp(&kb[..common]) {
        std::cmp::Ordering::Equal if ka.len() == kb.len() => a.1.cmp(b.1),
        std::cmp::Ordering::Equal => {
            let a = ka[common..].iter().chain(b"=").chain(a.1.as_bytes());
            let b = kb[common..].iter().chain(b"=").chain(b.1.as_bytes());
            a.cmp(b)
        }
        decided => decided,
    }
}

/// The long way: every part rewritten as Graphite needs, a key given twice
/// kept once (the later value), empty values left out; says whether
/// anything had to be changed.
fn rewritten_name_into<'a>(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    let path = path(name);
    let mut changed = matches!(path, Cow::Owned(_));
    let mut stack: [(Cow<'_, str>, Cow<'_, str>); STACK_LABELS] = Default::default();
    let mut spilled: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    let mut n = 0;
    for (k, v) in labels {
        let key = tag_key(k);
        changed |= matches!(key, Cow::Owned(_)) || key != k;
        let Some(value) = tag_value(v) else {
            changed = true;
            continue;
        };
        changed |= matches!(value, Cow::Owned(_));
        let tags = if n <= STACK_LABELS && spilled.is_empty() {
            &mut stack[..n]
        } else {
            &mut spilled[..]
        };
        match tags.iter_mut().find(|(existing, _)| *existing == key) {
            Some(slot) => {
                changed = true;
                slot.1 = value;
            }
            None if n < STACK_LABELS => {
                stack[n] = (key, value);
                n += 1;
            }
            None => {
                if spilled.is_empty() {
                    spilled.extend(stack.iter_mut().map(std::mem::take));
                }
                spilled.push((key, value));
                n += 1;
            }
        }
    }
    let tags = if spilled.is_empty() {
        &mut stack[..n]
    } else {
        &mut spilled[..]
    };
    // Carbon's canonical order: by the `k=v` strings.
    if tags.len() > 1 {
        tags.sort_by(|a, b| carbon_order((&a.0, &a.1), (&b.0, &b.1)));
    }
    out.reserve(
        path.len()
            + tags
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    out.push_str(&path);
    for (k, v) in tags.iter() {
        out.push(';');
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, labels: &[(&str, &str)]) -> (String, bool) {
        let n = graphite_name(name, labels.iter().copied());
        (n.name, n.changed)
    }

    #[test]
    fn clean_names_pass_unchanged() {
        assert_eq!(named("http.requests", &[]), ("http.requests".into(), false));
        assert_eq!(
            named("process_cpu_seconds_total", &[("a", "1")]),
            ("process_cpu_seconds_total;a=1".into(), false)
        );
        assert_eq!(
            named("x:y-z#w", &[("route", "/api/users?id=1")]),
            ("x:y-z#w;route=/api/users?id=1".into(), false)
        );
    }

    #[test]
    fn paths_are_rewritten_as_carbon_c_relay_does() {
        assert_eq!(named("a b/c", &[]).0, "a_b_c");
        assert_eq!(named("..a...b.", &[]).0, "a.b");
        assert_eq!(named("ünï", &[]).0, "_n_");
        assert_eq!(named("", &[]).0, "_");
        assert_eq!(named("...", &[]).0, "_");
        assert_eq!(
            named("a;b=c", &[]).0,
            "a_b_c",
            "no tags smuggled in the name"
        );
        assert_eq!(named("a\nb 1 2\nc", &[]).0, "a_b_1_2_c", "no second line");
        assert!(named("a b", &[]).1);
    }

    #[test]
    fn labels_are_sanitized_sorted_and_empty_values_left_out() {
        assert_eq!(
            named(
                "m",
                &[
                    ("zone", "eu west"),
                    ("a", "1"),
                    ("empty", ""),
                    ("k=v", "~x;y")
                ]
            )
            .0,
            "m;a=1;k_v=_x_y;zone=eu_west"
        );
        assert_eq!(named("m", &[("", "v")]).0, "m;_=v");
        assert_eq!(
            named("m", &[("name", "resize")]),
            ("m;_name=resize".into(), true)
        );
        // The same labels in another order: the same series.
        assert_eq!(
            named("m", &[("b", "2"), ("a", "1")]).0,
            named("m", &[("a", "1"), ("b", "2")]).0
        );
        // Carbon's order is by `k=v`: `a-b=y` before `a=x`.
        assert_eq!(named("m", &[("a", "x"), ("a-b", "y")]).0, "m;a-b=y;a=x");
        // A key given twice: the later wins.
        assert_eq!(named("m", &[("a", "1"), ("a", "2")]).0, "m;a=2");
    }

    #[test]
    fn the_quick_checks_agree_with_the_rules() {
        let samples = [
            "",
            "a",
            "a.b",
            ".a",
            "a.",
            "a..b",
            "a b",
            "a;b",
            "a=b",
            "~a",
            "a~",
            "name",
            "x!y",
            "x^y",
            "é",
            "a\tb",
            "a\x7fb",
            "a-b_c:d#e",
            "/api?x=1",
            // Longer than a word, with what is refused at every place
            // a word can put it.
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefg;ijklmnopq",
            "abcdefgh;jklmnopq",
            "abcdefghijklmnop;",
            "abcdefghijklmnop\x7f",
            "abcdefghijklmnop=",
            "abcdefghijklmno.",
            "abcdefgh..ijklmno",
            "abcdefg\u{e9}hijklmn",
            "~bcdefghij",
            "abc\x00defghijk",
            "abcdefghijklmn\x1fp",
            "0123456789ABCXYZ#:-_.az",
        ];
        for s in samples {
            // The word checks against their definition, the tables.
            if !s.is_empty() {
                assert_eq!(
                    words_pass(s, bad_value_word),
                    s.bytes().all(|b| VALUE_BYTE[usize::from(b)]),
                    "value bytes {s:?}"
                );
                assert_eq!(
                    words_pass(s, bad_key_word),
                    s.bytes().all(|b| KEY_BYTE[usize::from(b)]),
                    "key bytes {s:?}"
                );
            }
            assert_eq!(
                clean_path(s),
                matches!(path(s), Cow::Borrowed(p) if p == s),
                "{s:?}"
            );
            for v in samples {
                let slow = matches!(tag_key(s), Cow::Borrowed(k) if k == s)
                    && matches!(tag_value(v), Some(Cow::Borrowed(x)) if x == v);
                // The quick check may send non-ASCII the long way; never the
                // other way round.
                assert!(!clean_label(s, v) || slow, "{s:?} {v:?}");
                if s.is_ascii() && v.is_ascii() {
                    assert_eq!(clean_label(s, v), slow, "{s:?} {v:?}");
                }
            }
        }
    }

    #[test]
    fn the_word_checks_find_every_byte_the_tables_refuse_at_every_place() {
        assert!(words_pass("", bad_value_word), "nothing to refuse");
        for len in [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23] {
            for at in 0..len {
                for b in 0u8..0x80 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let s = std::str::from_utf8(&bytes).unwrap();
                    let table = |t: &[bool; 256]| bytes.iter().all(|&b| t[usize::from(b)]);
                    assert_eq!(words_pass(s, bad_value_word), table(&VALUE_BYTE), "{s:?}");
                    assert_eq!(words_pass(s, bad_key_word), table(&KEY_BYTE), "{s:?}");
                    let clean = table(&PATH_BYTE) && !s.starts_with('.') && !s.ends_with('.');
                    assert_eq!(clean_path(s), clean, "{s:?}");
                }
                // Two dots side by side, at every place (across words too).
                if at + 1 < len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b'.';
                    bytes[at + 1] = b'.';
                    let s = std::str::from_utf8(&bytes).unwrap();
                    assert!(!clean_path(s), "{s:?}");
                    bytes[at + 1] = b'a';
                    let s = std::str::from_utf8(&bytes).unwrap();
                    let edge = at == 0 || at == len - 1;
                    assert_eq!(clean_path(s), !edge, "{s:?}");
                }
            }
        }
        // Non-ASCII anywhere takes the long way.
        for s in [
            "\u{e9}abcdefgh",
            "abcdefgh\u{e9}",
            "abcdefg\u{e9}",
            "abcdefgh\u{2028}x",
        ] {
            assert!(!clean_path(s) && !words_pass(s, bad_value_word), "{s:?}");
        }
    }

    #[test]
    fn tags_are_ordered_by_their_k_eq_v_strings() {
        let parts = ["", "a", "ab", "a=", "b", "a.b", "=", "~", "z", "A"];
        for k1 in parts {
            for v1 in parts {
                for k2 in parts {
                    for v2 in parts {
                        assert_eq!(
                            carbon_order((k1, v1), (k2, v2)),
                            format!("{k1}={v1}").cmp(&format!("{k2}={v2}")),
                            "{k1}={v1} against {k2}={v2}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_quick_way_writes_what_the_long_way_does() {
        let parts = [
            "a", "b", "code", "200", "GET", "x.y", "a b", "", "~r", "é", "name",
        ];
        let mut quick_cases = 0;
        for name in ["m", "m.n", "a b", "m..n"] {
            for k1 in parts {
                for v1 in parts {
                    for (k2, v2) in [("b", "1"), ("a", "2"), ("code", "200"), (k1, "9")] {
                        for labels in [
                            vec![(k1, v1)],
                            vec![(k1, v1), (k2, v2)],
                            vec![(k2, v2), (k1, v1), ("method", "GET")],
                        ] {
                            let mut quick = String::new();
                            let mut slow = String::new();
                            let changed =
                                rewritten_name_into(&mut slow, name, labels.iter().copied());
                            if clean_name_into(&mut quick, name, labels.iter().copied()) {
                                quick_cases += 1;
                                assert_eq!(quick, slow, "{name:?} {labels:?}");
                                assert!(!changed, "{name:?} {labels:?}");
                            } else {
                                assert!(quick.is_empty(), "{name:?} {labels:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(
            quick_cases > 100,
            "only {quick_cases} cases took the quick way"
        );
    }

    #[test]
    fn same_finds_a_difference_at_every_place() {
        for n in 0..40 {
            let a = vec![b'x'; n];
            assert!(same(&a, &a.clone()));
            assert!(!same(&a, &vec![b'x'; n + 1]));
            for at in 0..n {
                let mut b = a.clone();
                b[at] = b'y';
                assert!(!same(&a, &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn long_names_and_many_tags_are_compared_too() {
        let labels: Vec<(String, String)> = (0..20)
            .map(|i| (format!("key{i:02}"), format!("a-value-long-enough-{i}")))
            .collect();
        for n in [1, 2, 15, 16, 17, 20] {
            let labels: Vec<(&str, &str)> = labels[..n]
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let name = graphite_name("a.rather.long.metric.path", labels.iter().copied()).name;
            let found = key_is_name(&name, "a.rather.long.metric.path", labels.iter().copied());
            assert_eq!(found, n <= MAX_KEY_TAGS, "{n} labels");
            let mut other = labels.clone();
            other[n - 1].1 = "a-value-long-enough-99";
            assert!(!key_is_name(
                &name,
                "a.rather.long.metric.path",
                other.iter().copied()
            ));
        }
    }

    #[test]
    fn a_key_is_its_name_exactly_when_the_names_are_equal() {
        let parts = [
            "a", "b", "a=b", "", "~r", "name", "_name", "x y", "x_y", "1", "a;b",
        ];
        let mut keys: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
        for name in ["m", "m.n", "m n", "m_n"] {
            keys.push((name, vec![]));
            for k1 in parts {
                for v1 in parts {
                    keys.push((name, vec![(k1, v1)]));
                    for (k2, v2) in [("b", "1"), ("a", "1"), ("a", "2"), (k1, v1)] {
                        keys.push((name, vec![(k1, v1), (k2, v2)]));
                    }
                }
            }
        }
        let named: Vec<String> = keys
            .iter()
            .map(|(n, l)| graphite_name(n, l.iter().copied()).name)
            .collect();
        let mut equal = 0;
        for (i, (name, labels)) in keys.iter().enumerate() {
            // A key is found as its own name, whenever it was clean.
            let own = key_is_name(&named[i], name, labels.iter().copied());
            let clean = !graphite_name(name, labels.iter().copied()).changed;
            assert!(own || !clean, "{name:?} {labels:?}");
            // Never as a name that is not its own (a step of 7 keeps the
            // pairs in the thousands).
            for (j, other) in named.iter().enumerate().step_by(7) {
                if key_is_name(other, name, labels.iter().copied()) {
                    assert_eq!(other, &named[i], "{name:?} {labels:?} as {:?}", keys[j]);
                    equal += 1;
                }
            }
        }
        assert!(equal > 100, "only {equal} matches");
    }

    #[test]
    fn every_result_is_a_valid_graphyte_name() {
        let nasty = [
            "", " ", ".", ";", "=", "~", "\n", "\t", "a\r\nb", "ä ö", "x..y", "^!", "\u{2028}",
        ];
        for name in nasty {
            for k in nasty {
                for v in nasty {
                    let n = graphite_name(name, [(k, v)].into_iter()).name;
                    assert!(
                        crate::line::check_name(&n).is_ok(),
                        "{name:?} {k:?} {v:?} -> {n:?}"
                    );
                }
            }
        }
    }
}
