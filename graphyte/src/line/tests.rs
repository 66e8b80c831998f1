use super::*;
use crate::value::to_string;

fn line<V: Value>(format: &LineFormat, name: &str, tags: &[(&str, &str)], v: V) -> Result<String> {
    let mut buf = b"kept|".to_vec();
    let r = format.format_into(&mut buf, name, tags, v, Timestamp::from(12345));
    let s = String::from_utf8(buf).unwrap();
    match r {
        Ok(()) => Ok(s.strip_prefix("kept|").unwrap().to_owned()),
        Err(e) => {
            assert_eq!(s, "kept|", "a refused line must leave the buffer as it was");
            Err(e)
        }
    }
}

fn plain() -> LineFormat {
    LineFormat::default()
}

#[test]
fn python_graphyte_examples() {
    assert_eq!(
        line(&plain(), "foo.bar", &[], 42).unwrap(),
        "foo.bar 42 12345\n"
    );
    let tagged = LineFormat::new("", &[("foo", "bar")]).unwrap();
    assert_eq!(
        line(&tagged, "tag.test", &[("ding", "dong")], 42).unwrap(),
        "tag.test;ding=dong;foo=bar 42 12345\n"
    );
}

#[test]
fn prefix_is_joined_with_one_dot() {
    let f = LineFormat::new("system.sync", &[] as &[(&str, &str)]).unwrap();
    assert_eq!(f.prefix(), "system.sync");
    assert_eq!(
        line(&f, "foo.bar", &[], 1).unwrap(),
        "system.sync.foo.bar 1 12345\n"
    );
    for bad in ["a.", ".a", "a..b", "a b", "a\nb"] {
        assert!(
            matches!(
                LineFormat::new(bad, &[] as &[(&str, &str)]),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn integers_are_exact() {
    let f = plain();
    assert_eq!(line(&f, "m", &[], 0).unwrap(), "m 0 12345\n");
    assert_eq!(line(&f, "m", &[], -1).unwrap(), "m -1 12345\n");
    assert_eq!(
        line(&f, "m", &[], i64::MIN).unwrap(),
        "m -9223372036854775808 12345\n"
    );
    assert_eq!(
        line(&f, "m", &[], u64::MAX).unwrap(),
        "m 18446744073709551615 12345\n"
    );
    assert_eq!(line(&f, "m", &[], 7u8).unwrap(), "m 7 12345\n");
    assert_eq!(
        line(&f, "m", &[], i128::MIN).unwrap(),
        format!("m {} 12345\n", i128::MIN)
    );
}

#[test]
fn floats_read_back_as_the_same_number() {
    for v in [
        0.1,
        1e-7,
        1e16,
        f64::MAX,
        f64::MIN_POSITIVE,
        -2.5,
        42.0,
        0.0,
        -0.0,
        1.0 / 3.0,
    ] {
        let s = to_string(v).unwrap();
        assert_eq!(
            s.parse::<f64>().unwrap().to_bits(),
            v.to_bits(),
            "{v} printed as {s}"
        );
    }
    let f = plain();
    assert_eq!(line(&f, "m", &[], 0.1).unwrap(), "m 0.1 12345\n");
    assert_eq!(line(&f, "m", &[], 1e-7).unwrap(), "m 1e-7 12345\n");
    assert_eq!(line(&f, "m", &[], 1e16).unwrap(), "m 1e16 12345\n");
    assert_eq!(line(&f, "m", &[], 42.5f32).unwrap(), "m 42.5 12345\n");
    assert_eq!(line(&f, "m", &[], 0.1f32).unwrap(), "m 0.1 12345\n");
    assert_eq!(
        line(&f, "m", &[], f64::MAX).unwrap(),
        "m 1.7976931348623157e308 12345\n"
    );
}

#[test]
fn nan_and_infinities_are_refused() {
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        match line(&plain(), "m", &[], v) {
            Err(Error::InvalidValue { name, .. }) => assert_eq!(name, "m"),
            other => panic!("{v}: {other:?}"),
        }
    }
    assert!(line(&plain(), "m", &[], f32::NAN).is_err());
}

#[test]
fn timestamps() {
    let f = plain();
    let mut buf = Vec::new();
    f.format_into(&mut buf, "m", &[], 1, Timestamp::from(1_700_000_000u64))
        .unwrap();
    assert_eq!(buf, b"m 1 1700000000\n");
    for bad in [0i64, -1, 1_700_000_000_000] {
        let err = f
            .format_into(&mut buf, "m", &[], 1, Timestamp::from(bad))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidTimestamp { timestamp, .. } if timestamp == bad));
    }
    assert_eq!(buf, b"m 1 1700000000\n");
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let cases = [
        ("", "must not be empty"),
        ("a b", "must not contain whitespace"),
        ("a\tb", "must not contain whitespace"),
        ("a\nb", "must not contain whitespace"),
        ("a\rb", "must not contain whitespace"),
        ("a\u{2028}b", "must not contain whitespace"),
        ("a\u{a0}b", "must not contain whitespace"),
        ("a\0b", "must not contain control characters"),
        ("a\u{1b}b", "must not contain control characters"),
        ("a..b", "must not contain an empty segment"),
        (".a", "must not contain an empty segment"),
        ("a.", "must not contain an empty segment"),
        ("a.b.", "must not contain an empty segment"),
    ];
    for (name, reason) in cases {
        match line(&plain(), name, &[], 1) {
            Err(Error::InvalidName { name: n, reason: r }) => {
                assert_eq!(n, name);
                assert!(r.starts_with(reason), "{name:?}: {r}");
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_tags_are_refused_with_the_reason() {
    let cases = [
        ("", "v", "tag key must not be empty"),
        ("k", "", "tag value must not be empty"),
        ("a;b", "v", "tag key must not contain ';'"),
        ("a!b", "v", "tag key must not contain ';'"),
        ("a^b", "v", "tag key must not contain ';'"),
        ("a=b", "v", "tag key must not contain ';'"),
        ("a b", "v", "tag key must not contain whitespace"),
        ("k", "a;b", "tag value must not contain ';'"),
        ("k", "a b", "tag value must not contain whitespace"),
        ("k", "a\nb", "tag value must not contain whitespace"),
        ("k", "~v", "tag value must not start with '~'"),
        ("k", "a\0b", "tag value must not contain control characters"),
    ];
    for (k, v, reason) in cases {
        match line(&plain(), "m", &[(k, v)], 1) {
            Err(Error::InvalidTag {
                name,
                key,
                value,
                reason: r,
            }) => {
                assert_eq!((name.as_str(), key.as_str(), value.as_str()), ("m", k, v));
                assert!(r.starts_with(reason), "{k:?}={v:?}: {r}");
            }
            other => panic!("{k:?}={v:?}: {other:?}"),
        }
        assert!(
            LineFormat::new("", &[(k, v)]).is_err(),
            "default tag {k:?}={v:?}"
        );
    }
    // Values may contain '=' (Carbon splits at the first one).
    assert_eq!(
        line(&plain(), "m", &[("k", "a=b")], 1).unwrap(),
        "m;k=a=b 1 12345\n"
    );
}

#[test]
fn inline_tags_are_validated_and_merged() {
    let f = LineFormat::new("p", &[("env", "dev"), ("dc", "x")]).unwrap();
    assert_eq!(
        line(&f, "m;env=prod;host=a", &[("host", "b")], 1).unwrap(),
        "p.m;dc=x;env=prod;host=b 1 12345\n"
    );
    for bad in ["m;", "m;;a=b", "m;env", "m;=x", "m;a=", "m;a=~x", ";a=b"] {
        assert!(line(&plain(), bad, &[], 1).is_err(), "{bad:?}");
    }
}

#[test]
fn tags_use_carbons_canonical_order() {
    // Carbon sorts ";k=v" strings: ';a-b=y' < ';a=x' because '-' < '='.
    assert_eq!(
        line(&plain(), "m", &[("a", "x"), ("a-b", "y")], 1).unwrap(),
        "m;a-b=y;a=x 1 12345\n"
    );
    assert_eq!(
        line(&plain(), "m", &[("host", "a"), ("env", "prod")], 1).unwrap(),
        "m;env=prod;host=a 1 12345\n"
    );
    // A later duplicate wins, like Carbon's dict.
    assert_eq!(
        line(&plain(), "m", &[("k", "1"), ("k", "2")], 1).unwrap(),
        "m;k=2 1 12345\n"
    );
}

#[test]
fn no_input_can_make_a_second_line() {
    let hostile = [
        "a\nb",
        "a\r\nb 1 2",
        "x\u{85}y",
        "x\u{2029}y",
        "a\u{0}",
        "a\u{b}b",
        "a\u{c}b",
    ];
    for h in hostile {
        assert!(line(&plain(), h, &[], 1).is_err(), "{h:?}");
        assert!(line(&plain(), "m", &[(h, "v")], 1).is_err(), "{h:?}");
        assert!(line(&plain(), "m", &[("k", h)], 1).is_err(), "{h:?}");
    }
}

#[test]
fn lines_over_16_kib_are_refused() {
    let ok_name = "a".repeat(MAX_LINE_LEN - " 1 12345\n".len());
    assert_eq!(
        line(&plain(), &ok_name, &[], 1).unwrap().len(),
        MAX_LINE_LEN
    );
    let long = "a".repeat(MAX_LINE_LEN - " 1 12345\n".len() + 1);
    match line(&plain(), &long, &[], 1) {
        Err(Error::LineTooLong { len, .. }) => assert_eq!(len, MAX_LINE_LEN + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unicode_names_pass() {
    assert_eq!(
        line(&plain(), "bad.ünï.名前", &[("région", "zürich")], 1).unwrap(),
        "bad.ünï.名前;région=zürich 1 12345\n"
    );
}

#[test]
fn check_name_matches_the_formatter() {
    assert!(check_name("a.b;k=v").is_ok());
    assert!(matches!(
        check_name("a;k=~v"),
        Err(Error::InvalidTag { .. })
    ));
    assert!(matches!(check_name("a b"), Err(Error::InvalidName { .. })));
}

#[test]
fn prerendered_default_tags_match_the_merge() {
    let sets: &[&[(&str, &str)]] = &[
        &[],
        &[("env", "prod")],
        &[("host", "a"), ("env", "prod")],
        // ';a-b=y' < ';a=x' because '-' < '=': not the order of the keys.
        &[("a", "x"), ("a-b", "y")],
        &[("a-b", "y"), ("a", "x")],
        // '.' and '-' sort before '=', '_' and letters after it.
        &[
            ("ab", "1"),
            ("a_b", "2"),
            ("a", "3"),
            ("a.b", "4"),
            ("a-b", "5"),
        ],
        // A later duplicate wins, and is placed by its own value.
        &[("k", "1"), ("k", "2")],
        &[("k", "2"), ("j", "0"), ("k", "1")],
        // Values may contain '=' and sort by their bytes after the key's '='.
        &[("k", "a=b"), ("k2", "v"), ("k-", "=")],
        &[("région", "zürich"), ("region", "x"), ("regio", "n")],
    ];
    for &set in sets {
        let defaults = LineFormat::new("p", set).unwrap();
        // The fast path: the call has neither inline nor call tags.
        let fast = line(&defaults, "m", &[], 1).unwrap();
        // The merge path, through the private function and through the
        // public API with the same tags given per call.
        let mut merged = b"p.m".to_vec();
        defaults
            .write_tags(&mut merged, "m", None, &[] as &[(&str, &str)])
            .unwrap();
        merged.extend_from_slice(b" 1 12345\n");
        assert_eq!(fast, String::from_utf8(merged).unwrap(), "{set:?}");
        let per_call = LineFormat::new("p", &[] as &[(&str, &str)]).unwrap();
        assert_eq!(fast, line(&per_call, "m", set, 1).unwrap(), "{set:?}");
        // A call tag that changes nothing takes the merge path too.
        if let Some(&last) = set.last() {
            assert_eq!(fast, line(&defaults, "m", &[last], 1).unwrap(), "{set:?}");
        }
    }
    assert_eq!(
        line(
            &LineFormat::new("", &[("a", "x"), ("a-b", "y")]).unwrap(),
            "m",
            &[],
            1
        )
        .unwrap(),
        "m;a-b=y;a=x 1 12345\n"
    );
}

#[test]
fn checked_names_are_formatted_as_format_into_does() {
    let formats = [
        plain(),
        LineFormat::new::<&str, &str>("app", &[]).unwrap(),
        LineFormat::new("app.x", &[("env", "prod"), ("host", "a")]).unwrap(),
        LineFormat::new("", &[("zone", "eu"), ("a", "1")]).unwrap(),
    ];
    let names = [
        "m",
        "db.query.count",
        "a-b_c:d#e",
        "m;k=v",
        "m;env=test;b=2",
        "é.ü",
    ];
    for format in &formats {
        for name in names {
            assert!(check_name(name).is_ok(), "{name}");
            for value in [0.5f64, -3.0, 1e300] {
                let long = line(format, name, &[], value).unwrap();
                let mut buf = b"kept|".to_vec();
                format
                    .format_checked_into(&mut buf, name, value, &Stamp::new(Timestamp::from(12345)))
                    .unwrap();
                assert_eq!(String::from_utf8(buf).unwrap(), format!("kept|{long}"));
            }
        }
    }
    // What the tail refuses is still refused, leaving the buffer as it was.
    let mut buf = b"kept|".to_vec();
    assert!(matches!(
        plain().format_checked_into(&mut buf, "m", f64::NAN, &Stamp::new(Timestamp::from(12345))),
        Err(Error::InvalidValue { .. })
    ));
    assert_eq!(buf, b"kept|");
    // So is an invalid timestamp, with the error format_into gives.
    for ts in [0, i64::from(u32::MAX) + 1] {
        assert!(matches!(
            plain().format_checked_into(&mut buf, "m", 1i64, &Stamp::new(Timestamp::from(ts))),
            Err(Error::InvalidTimestamp { .. })
        ));
        assert_eq!(buf, b"kept|");
    }
    // The largest valid timestamp fits the stamp.
    plain()
        .format_checked_into(&mut buf, "m", 1i64, &Stamp::new(Timestamp::from(u32::MAX)))
        .unwrap();
    assert_eq!(buf, format!("kept|m 1 {}\n", u32::MAX).as_bytes());
}
