//! Metric values: every integer type, `f32` and `f64`.

mod sealed {
    pub trait Sealed {}
}

/// A number that can be sent as a metric value.
///
/// Implemented for every primitive integer type (printed exactly, `u64::MAX`
/// and `i128` included) and for `f32`/`f64` (printed as the shortest decimal
/// that reads back as the same number, e.g. `0.1`, `1e16`, `1e-7`). NaN and
/// the infinities are refused: Carbon drops NaN silently and an infinity
/// poisons every function applied to the series.
///
/// This trait is sealed: it cannot be implemented outside graphyte.
pub trait Value: Copy + sealed::Sealed {
    /// Appends the value as Carbon should read it, or says why it cannot be sent.
    #[doc(hidden)]
    fn write_value(self, buf: &mut Vec<u8>) -> Result<(), &'static str>;

    /// The value as an `f64` (exact for integers up to 2^53).
    fn as_f64(self) -> f64;
}

macro_rules! integer_values {
    ($($t:ty)*) => {$(
        impl sealed::Sealed for $t {}
        impl Value for $t {
            #[inline]
            fn write_value(self, buf: &mut Vec<u8>) -> Result<(), &'static str> {
                write_int(buf, self);
                Ok(())
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
integer_values!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

macro_rules! float_values {
    ($($t:ty)*) => {$(
        impl sealed::Sealed for $t {}
        impl Value for $t {
            #[inline]
            fn write_value(self, buf: &mut Vec<u8>) -> Result<(), &'static str> {
                check_finite(self.as_f64())?;
                buf.extend_from_slice(ryu::Buffer::new().format_finite(self).as_bytes());
                Ok(())
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
float_values!(f32 f64);

/// Appends a decimal integer: integer values and timestamps.
#[inline]
pub(crate) fn write_int<I: itoa::Integer>(buf: &mut Vec<u8>, n: I) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Refuses what Graphite cannot store faithfully, with the reason:
/// NaN (Carbon drops it silently) and the infinities (they poison every
/// function applied to the series).
#[inline]
pub(crate) fn check_finite(v: f64) -> Result<(), &'static str> {
    if v.is_nan() {
        Err("NaN cannot be stored by Graphite")
    } else if v.is_infinite() {
        Err("infinite values cannot be sent to Graphite")
    } else {
        Ok(())
    }
}

/// Formats a value alone, for error messages and tests.
#[cfg(test)]
pub(crate) fn to_string<V: Value>(v: V) -> Result<String, &'static str> {
    let mut buf = Vec::new();
    v.write_value(&mut buf)?;
    Ok(String::from_utf8(buf).expect("numbers are ASCII"))
}
