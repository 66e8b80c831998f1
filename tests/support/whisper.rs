//! A minimal reader for whisper (`.wsp`) files, the format carbon-cache
//! writes. All numbers are big-endian:
//!
//! - header: `u32 aggregationType, u32 maxRetention, f32 xFilesFactor,
//!   u32 archiveCount` (16 bytes);
//! - one archive info per archive: `u32 offset, u32 secondsPerPoint,
//!   u32 points` (12 bytes each);
//! - each archive is a ring of `points` slots of `u32 timestamp, f64 value`
//!   (12 bytes each), starting at `offset`. An empty slot has timestamp 0.
//!
//! Only archive 0 (the highest precision) is read, which is all the tests
//! need: their schema is a single `1s:1h` archive.

use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const HEADER_LEN: usize = 16;
const ARCHIVE_INFO_LEN: usize = 12;
const POINT_LEN: usize = 12;

/// The metadata at the start of a whisper file.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Aggregation method id (1 = average, 2 = sum, 3 = last, 4 = max, 5 = min, ...).
    pub aggregation_type: u32,
    /// The longest retention of all archives, in seconds.
    pub max_retention: u32,
    /// The fraction of known points needed to aggregate into a lower archive.
    pub x_files_factor: f32,
    /// The archives, highest precision first.
    pub archives: Vec<ArchiveInfo>,
}

/// Where one archive lives in the file and what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Byte offset of the archive's first slot.
    pub offset: u32,
    /// Seconds covered by one slot.
    pub seconds_per_point: u32,
    /// Number of slots.
    pub points: u32,
}

impl ArchiveInfo {
    /// Seconds covered by the whole archive.
    pub fn retention(&self) -> u64 {
        u64::from(self.seconds_per_point) * u64::from(self.points)
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn be_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Parses the header and archive infos at the start of `data`.
///
/// Fails with `InvalidData` when `data` is too short, which is also what a
/// file that carbon is still creating can look like.
pub fn parse_header(data: &[u8]) -> io::Result<Header> {
    if data.len() < HEADER_LEN {
        return Err(invalid(format!(
            "whisper header needs {HEADER_LEN} bytes, file has {}",
            data.len()
        )));
    }
    let archive_count = be_u32(data, 12) as usize;
    if archive_count == 0 || archive_count > 1024 {
        return Err(invalid(format!(
            "implausible archive count {archive_count}"
        )));
    }
    let needed = HEADER_LEN + archive_count * ARCHIVE_INFO_LEN;
    if data.len() < needed {
        return Err(invalid(format!(
            "whisper header with {archive_count} archives needs {needed} bytes, file has {}",
            data.len()
        )));
    }
    let archives = (0..archive_count)
        .map(|i| {
            let at = HEADER_LEN + i * ARCHIVE_INFO_LEN;
            ArchiveInfo {
                offset: be_u32(data, at),
                seconds_per_point: be_u32(data, at + 4),
                points: be_u32(data, at + 8),
            }
        })
        .collect();
    Ok(Header {
        aggregation_type: be_u32(data, 0),
        max_retention: be_u32(data, 4),
        x_files_factor: f32::from_bits(be_u32(data, 8)),
        archives,
    })
}

/// The non-empty points of archive 0 in `data`, sorted by timestamp.
///
/// A slot counts when its timestamp is nonzero (whisper writes 0 into empty
/// slots), is aligned to the archive's step, sits in the slot whisper would
/// have used for it (relative to the timestamp in slot 0, which is where the
/// first write to an archive goes), and is not older than the archive's
/// retention as of `now` (Unix seconds). Points in the future are kept.
pub fn parse_points(data: &[u8], now: u64) -> io::Result<Vec<(u32, f64)>> {
    let header = parse_header(data)?;
    let archive = header.archives[0];
    let step = i64::from(archive.seconds_per_point);
    let slots = i64::from(archive.points);
    if step == 0 || slots == 0 {
        return Err(invalid(format!("degenerate archive 0: {archive:?}")));
    }
    let start = archive.offset as usize;
    let end = start + archive.points as usize * POINT_LEN;
    if data.len() < end {
        return Err(invalid(format!(
            "archive 0 ends at byte {end}, file has {} (still being created?)",
            data.len()
        )));
    }

    let base = i64::from(be_u32(data, start));
    let oldest = now as i64 - archive.retention() as i64;
    let mut points: Vec<(u32, f64)> = data[start..end]
        .chunks_exact(POINT_LEN)
        .enumerate()
        .filter_map(|(slot, raw)| {
            let ts = be_u32(raw, 0);
            let value = f64::from_bits(u64::from_be_bytes(raw[4..12].try_into().unwrap()));
            let t = i64::from(ts);
            let expected_slot = ((t - base) / step).rem_euclid(slots);
            let valid = ts != 0 && t % step == 0 && expected_slot == slot as i64 && t > oldest;
            valid.then_some((ts, value))
        })
        .collect();
    points.sort_by_key(|&(ts, _)| ts);
    Ok(points)
}

/// Reads the non-empty points of archive 0 of the whisper file at `path`,
/// sorted by timestamp (see [`parse_points`]). A missing file is an error of
/// kind `NotFound`.
pub fn read_points(path: &Path) -> io::Result<Vec<(u32, f64)>> {
    let data = std::fs::read(path)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs();
    parse_points(&data, now)
}
