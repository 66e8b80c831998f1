//! Unix-second timestamps as Carbon and whisper store them.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point's time in whole Unix seconds.
///
/// Made from any integer type (`1_700_000_000`, a `u64` from
/// `Duration::as_secs`, a `u128` from `as_millis` that the range check then
/// refuses) or a [`SystemTime`] (truncated to
/// the second, as Carbon truncates fractional timestamps). Whisper stores
/// timestamps as `u32`, so graphyte refuses values outside `1..=u32::MAX`
/// instead of letting Carbon drop them silently; a value in milliseconds is the
/// usual cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time, in whole seconds.
    ///
    /// On Linux this reads `CLOCK_REALTIME_COARSE` (updated every 1-4 ms by
    /// the kernel), several times cheaper than [`SystemTime::now`]; a send in
    /// the last few milliseconds of a second may carry that second.
    #[inline]
    pub fn now() -> Timestamp {
        coarse_now().unwrap_or_else(|| Timestamp::from(SystemTime::now()))
    }

    /// The timestamp in seconds, as given.
    pub fn as_secs(self) -> i64 {
        self.0
    }

    /// The timestamp as whisper stores it (`1..=u32::MAX` seconds), or why it
    /// cannot be stored: the rule every send applies, for callers that want
    /// to check a timestamp before they have a line to send.
    ///
    /// ```
    /// use graphyte::Timestamp;
    /// assert_eq!(Timestamp::from(1_700_000_000).checked(), Ok(1_700_000_000));
    /// assert!(Timestamp::from(1_700_000_000_000_u64).checked().is_err()); // milliseconds
    /// ```
    pub fn checked(self) -> Result<u32, &'static str> {
        if self.0 <= 0 {
            Err("must be after 1970-01-01T00:00:00Z; Carbon drops such points")
        } else if self.0 > i64::from(u32::MAX) {
            Err("is after 2106-02-07 (u32::MAX seconds), which whisper cannot store; was it given in milliseconds?")
        } else {
            Ok(self.0 as u32)
        }
    }
}

/// The coarse realtime clock, if the platform has one.
#[cfg(target_os = "linux")]
#[inline]
fn coarse_now() -> Option<Timestamp> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame, and
    // clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    // time_t is i32 on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    (rc == 0).then(|| Timestamp(i64::from(ts.tv_sec)))
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_now() -> Option<Timestamp> {
    None
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            // Before the epoch: round towards minus infinity, then refuse it in `checked`.
            Err(e) => Timestamp(-i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX) - 1),
        }
    }
}

macro_rules! from_int {
    ($($t:ty)*) => {$(
        impl From<$t> for Timestamp {
            fn from(secs: $t) -> Timestamp {
                Timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
            }
        }
    )*};
}
from_int!(i32 i64 u32 u64 usize isize i128 u128);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn integers_and_system_time() {
        assert_eq!(Timestamp::from(12345).checked(), Ok(12345));
        assert_eq!(Timestamp::from(u32::MAX).checked(), Ok(u32::MAX));
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        assert_eq!(Timestamp::from(t).checked(), Ok(1_700_000_000));
    }

    #[test]
    fn now_agrees_with_the_system_clock() {
        let before = Timestamp::from(SystemTime::now()).as_secs();
        let now = Timestamp::now().as_secs();
        let after = Timestamp::from(SystemTime::now()).as_secs();
        // The coarse clock may lag by a few milliseconds at a second boundary.
        assert!(
            now >= before - 1 && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    #[test]
    fn out_of_range_is_refused() {
        assert!(Timestamp::from(0).checked().is_err());
        assert!(Timestamp::from(-1).checked().is_err());
        assert!(Timestamp::from(1_700_000_000_000u64)
            .checked()
            .unwrap_err()
            .contains("milliseconds"));
        assert!(Timestamp::from(u64::MAX).checked().is_err());
        let before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(Timestamp::from(before).as_secs(), -1);
        assert!(Timestamp::from(before).checked().is_err());
    }
}
