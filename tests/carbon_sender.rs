//! graphyte against a real carbon-cache: what `Sender` sends is read back
//! from the whisper files carbon writes.
//!
//! These tests skip loudly without carbon, and fail under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.

mod support;

use std::time::Duration;

use graphyte::{Config, Protocol, Sender};
use support::{unix_now, CarbonServer};

const WAIT: Duration = Duration::from_secs(15);

fn one_point(carbon: &CarbonServer, metric: &str) -> (u32, f64) {
    let points = carbon.wait_for_points(metric, 1, WAIT);
    assert_eq!(points.len(), 1, "{metric}: {points:?}");
    points[0]
}

#[test]
fn sync_tcp_values_prefix_tags_and_timestamps() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix("it.sync"),
    )
    .unwrap();
    let ts = unix_now() - 60;
    let values: [(&str, f64); 9] = [
        ("int", 42.0),
        ("negative", -7.0),
        ("zero", 0.0),
        ("big", 9_007_199_254_740_992.0), // 2^53: exact in a whisper f64
        ("tenth", 0.1),
        ("tiny", 1e-7),
        ("huge", 1e16),
        ("half", 43.5),
        ("negative_float", -2.25),
    ];
    s.send_at("int", 42, ts).unwrap();
    s.send_at("negative", -7i64, ts).unwrap();
    s.send_at("zero", 0u8, ts).unwrap();
    s.send_at("big", 9_007_199_254_740_992u64, ts).unwrap();
    s.send_at("tenth", 0.1, ts).unwrap();
    s.send_at("tiny", 1e-7, ts).unwrap();
    s.send_at("huge", 1e16, ts).unwrap();
    s.send_at("half", 43.5f32, ts).unwrap();
    s.send_at("negative_float", -2.25, ts).unwrap();
    for (name, expected) in values {
        let (at, value) = one_point(&carbon, &format!("it.sync.{name}"));
        assert_eq!(at, ts, "{name}: timestamp");
        assert_eq!(
            value.to_bits(),
            expected.to_bits(),
            "{name}: {value} != {expected}"
        );
    }

    // Tags: carbon stores the series under the sha256 of its canonical name.
    s.send_tagged_at("tagged", 5, &[("host", "a"), ("env", "prod")], ts)
        .unwrap();
    assert_eq!(
        one_point(&carbon, "it.sync.tagged;env=prod;host=a"),
        (ts, 5.0)
    );

    // "now" is the default timestamp; several explicit ones land in their own slots.
    let before = unix_now();
    s.send("now", 1).unwrap();
    let (at, _) = one_point(&carbon, "it.sync.now");
    // The send reads the coarse clock, which may still show the second
    // before for a few milliseconds after the system clock turned.
    assert!(
        at + 1 >= before && at <= unix_now(),
        "{at} not within the send"
    );
    for i in 0..5u32 {
        s.send_at("series", i * 10, ts - i).unwrap();
    }
    let points = carbon.wait_for_points("it.sync.series", 5, WAIT);
    let expected: Vec<(u32, f64)> = (0..5u32)
        .rev()
        .map(|i| (ts - i, f64::from(i * 10)))
        .collect();
    assert_eq!(points, expected);
}

#[test]
fn udp_lands_too() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .protocol(Protocol::Udp)
            .prefix("it.udp"),
    )
    .unwrap();
    let ts = unix_now() - 30;
    s.send_at("float", 43.5, ts).unwrap();
    s.send_tagged_at("tagged", 2, &[("env", "prod")], ts)
        .unwrap();
    assert_eq!(one_point(&carbon, "it.udp.float"), (ts, 43.5));
    assert_eq!(one_point(&carbon, "it.udp.tagged;env=prod"), (ts, 2.0));
}

#[test]
fn interval_mode_delivers_ten_thousand_lines_across_many_series() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix("it.interval")
            .interval(Duration::from_millis(500)),
    )
    .unwrap();
    const SERIES: u32 = 100;
    const POINTS: u32 = 100;
    let base = unix_now() - 600;
    for p in 0..POINTS {
        for series in 0..SERIES {
            s.send_at(&format!("s{series:03}"), series * 1000 + p, base + p)
                .unwrap();
        }
    }
    s.stop().unwrap();
    assert_eq!(s.stats().sent, u64::from(SERIES * POINTS));
    for series in 0..SERIES {
        let points =
            carbon.wait_for_points(&format!("it.interval.s{series:03}"), POINTS as usize, WAIT);
        let expected: Vec<(u32, f64)> = (0..POINTS)
            .map(|p| (base + p, f64::from(series * 1000 + p)))
            .collect();
        assert_eq!(points, expected, "series {series}");
    }
}
