//! Property test over hostile names, tags, values and timestamps: the line
//! builder never panics, accepts exactly what an independent oracle calls
//! valid, and every accepted line is exactly one Carbon-valid line.
//!
//! Inputs come from a seeded xorshift generator over an alphabet of line
//! breakers (`\n`, `\r`, NUL, Unicode separators), Carbon's special
//! characters (`;`, `=`, `.`, `~`, `!`, `^`) and ordinary text. The seed and
//! the case are printed on failure, so a failure can be replayed with
//! `GRAPHYTE_PROPTEST_SEED`. `GRAPHYTE_PROPTEST_CASES` sets the number of cases.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io;

use support::rng::Rng;

use graphyte::{CaptureTransport, Config, LineFormat, Sender, Timestamp, MAX_LINE_LEN};

/// Line breakers, Carbon's special characters and ordinary text.
const ALPHABET: &[char] = &[
    'a', 'b', 'z', '0', '9', '_', '-', '/', ':', '#', 'é', '名', '.', '.', '.', ';', '=', '~', '!',
    '^', ' ', '\t', '\n', '\r', '\0', '\u{b}', '\u{c}', '\u{1c}', '\u{1f}', '\u{7f}', '\u{85}',
    '\u{a0}', '\u{2028}', '\u{2029}', '\u{3000}', '\u{feff}',
];

fn word(rng: &mut Rng, max: usize) -> String {
    // Mostly plain words, so that valid inputs are common too.
    let len = rng.below(max + 1);
    let hostile = rng.below(3) == 0;
    (0..len)
        .map(|_| {
            if hostile {
                ALPHABET[rng.below(ALPHABET.len())]
            } else {
                ALPHABET[rng.below(13)]
            }
        })
        .collect()
}

/// Python's `str.isspace()`, which decides how Carbon splits a line.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

// --- the oracle: the rules, written independently of graphyte's code ----------

fn oracle_path(p: &str) -> bool {
    !p.is_empty()
        && !p
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ';')
        && p.split('.').all(|s| !s.is_empty())
}

fn oracle_key(k: &str) -> bool {
    !k.is_empty()
        && !k
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ";!^=".contains(c))
}

fn oracle_value(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('~')
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ';')
}

fn oracle_name(name: &str) -> bool {
    let mut parts = name.split(';');
    let path = parts.next().unwrap_or("");
    oracle_path(path)
        && parts.all(|tag| match tag.split_once('=') {
            Some((k, v)) => oracle_key(k) && oracle_value(v),
            None => false,
        })
}

/// Checks that `line` is exactly one line Carbon accepts as intended.
fn assert_carbon_valid(line: &str, case: &str) {
    assert!(line.ends_with('\n'), "{case}: no final newline in {line:?}");
    assert_eq!(
        line.matches('\n').count(),
        1,
        "{case}: several lines in {line:?}"
    );
    assert!(!line.contains('\r'), "{case}: CR in {line:?}");
    assert!(line.len() <= MAX_LINE_LEN, "{case}: {} bytes", line.len());
    let fields: Vec<&str> = line.split(py_space).filter(|f| !f.is_empty()).collect();
    assert_eq!(
        fields.len(),
        3,
        "{case}: Carbon would split {line:?} into {fields:?}"
    );
    let (path, tags) = fields[0].split_once(';').unwrap_or((fields[0], ""));
    assert!(oracle_path(path), "{case}: bad path {path:?}");
    if !tags.is_empty() {
        let mut rendered = Vec::new();
        for tag in tags.split(';') {
            let (k, v) = tag
                .split_once('=')
                .unwrap_or_else(|| panic!("{case}: tag {tag:?}"));
            assert!(oracle_key(k) && oracle_value(v), "{case}: bad tag {tag:?}");
            rendered.push(format!(";{tag}"));
        }
        let mut sorted = rendered.clone();
        sorted.sort();
        assert_eq!(rendered, sorted, "{case}: tags not in Carbon's order");
    }
    let value: f64 = fields[1]
        .parse()
        .unwrap_or_else(|_| panic!("{case}: value {:?}", fields[1]));
    assert!(value.is_finite(), "{case}");
    let ts: u64 = fields[2]
        .parse()
        .unwrap_or_else(|_| panic!("{case}: ts {:?}", fields[2]));
    assert!((1..=u64::from(u32::MAX)).contains(&ts), "{case}: ts {ts}");
}

fn cases() -> (u64, usize) {
    let seed = std::env::var("GRAPHYTE_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let n = std::env::var("GRAPHYTE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    (seed, n)
}

#[test]
fn the_builder_accepts_exactly_the_valid_lines() {
    let (seed, n) = cases();
    let mut rng = Rng(seed);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..n {
        let prefix = if rng.below(4) == 0 {
            word(&mut rng, 6)
        } else {
            String::new()
        };
        let default_tags: Vec<(String, String)> = (0..rng.below(2))
            .map(|_| (word(&mut rng, 4), word(&mut rng, 4)))
            .collect();
        let mut name = word(&mut rng, 12);
        if rng.below(4) == 0 {
            name.push(';');
            name.push_str(&word(&mut rng, 8));
        }
        let tags: Vec<(String, String)> = (0..rng.below(3))
            .map(|_| (word(&mut rng, 5), word(&mut rng, 5)))
            .collect();
        let value = match rng.below(5) {
            0 => f64::from_bits(rng.next()),
            1 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, f64::MAX][rng.below(5)],
            _ => rng.next() as i64 as f64 / 1e3,
        };
        let ts = match rng.below(6) {
            0 => rng.next() as i64,
            1 => [0, -1, i64::from(u32::MAX), i64::from(u32::MAX) + 1][rng.below(4)],
            _ => 1_700_000_000 + rng.below(1000) as i64,
        };
        let case = format!(
            "case {i} (seed {seed}): prefix {prefix:?} default tags {default_tags:?} name {name:?} tags {tags:?} value {value:?} ts {ts}"
        );

        let format = LineFormat::new(&prefix, &default_tags);
        let prefix_ok = prefix.is_empty() || oracle_path(&prefix);
        let defaults_ok = default_tags
            .iter()
            .all(|(k, v)| oracle_key(k) && oracle_value(v));
        assert_eq!(
            format.is_ok(),
            prefix_ok && defaults_ok,
            "{case}: {:?}",
            format.err()
        );
        let Ok(format) = format else { continue };

        let tag_refs: Vec<(&str, &str)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut buf = b"previous line\n".to_vec();
        let result = format.format_into(&mut buf, &name, &tag_refs, value, Timestamp::from(ts));
        let expected = oracle_name(&name)
            && tags.iter().all(|(k, v)| oracle_key(k) && oracle_value(v))
            && value.is_finite()
            && (1..=i64::from(u32::MAX)).contains(&ts);
        match result {
            Ok(()) => {
                let line = std::str::from_utf8(&buf[14..]).expect("UTF-8");
                if line.len() <= MAX_LINE_LEN {
                    assert!(expected, "{case}: accepted {line:?}");
                }
                assert_carbon_valid(line, &case);
                accepted += 1;
            }
            Err(e) => {
                assert!(!expected, "{case}: refused valid input: {e}");
                assert_eq!(buf, b"previous line\n", "{case}: refusal left bytes behind");
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    eprintln!("{n} cases: {accepted} accepted, {refused} refused");
    assert!(
        accepted > n / 20 && refused > n / 20,
        "the generator must exercise both sides"
    );
}

#[test]
fn no_name_or_tag_can_inject_a_line_on_the_wire() {
    let (seed, n) = cases();
    let mut rng = Rng(seed ^ 0x5555);
    let capture = CaptureTransport::new();
    let sender = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    let mut accepted = 0;
    for _ in 0..n / 4 {
        let name = format!(
            "{}{}{}",
            word(&mut rng, 4),
            ["\n", "\r\n", " 1 2\nx", "\u{2028}", "\0", ""][rng.below(6)],
            word(&mut rng, 4)
        );
        let tag = (
            word(&mut rng, 3),
            format!("v{}", ["\nx 1 2", ";y=z", " ", ""][rng.below(4)]),
        );
        if sender
            .send_tagged_at(&name, 1, &[(&tag.0, &tag.1)], 1_700_000_000)
            .is_ok()
        {
            accepted += 1;
        }
    }
    let lines = capture.lines();
    assert_eq!(
        lines.len(),
        accepted,
        "one line on the wire per accepted send"
    );
    for line in lines {
        assert_carbon_valid(&format!("{line}\n"), "wire");
    }
    // A transport failure never turns into a panic either.
    capture.fail_with(Some(io::ErrorKind::BrokenPipe));
    assert!(sender.send_at("m", 1, 1_700_000_000).is_err());
}
