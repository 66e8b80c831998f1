//! The benchmarks of graphyte: `benches/micro.rs` (criterion, against
//! baselines and the metrics and cadence crates), `benches/throughput.rs`
//! (end to end over loopback TCP, the Python graphyte, memory) and
//! `benches/series.rs` (non-literal names against a plain map, heap per
//! series, expiry, the interval thread's drain), `benches/facade.rs`
//! (graphyte as a `metrics` recorder against the Prometheus exporter's),
//! `benches/tls.rs` (interval mode over TLS against plaintext, feature
//! `tls`) and `benches/relay.rs` (graphyte into carbon-c-relay against a
//! raw sender, with `GRAPHYTE_RELAY_BIN`). Run them with
//! `./scripts/bench` from the repository root; BENCHMARKS.md has the figures.
//!
//! This library holds what the benches share: where their results go, how
//! criterion's estimates are read back, the markdown fragments that
//! `./scripts/bench` splices into BENCHMARKS.md ([`splice`], run by the
//! `update-benchmarks` binary) and the SVG charts ([`chart`]).
//!
//! A full run (`cargo bench`, which passes `--bench`) writes its fragments
//! and charts under `target/bench-results/`; a smoke run under `cargo test`
//! writes them under `target/bench-results/smoke/`, so that a test never
//! mixes its figures into those of a full run.

pub mod chart;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An interval that does not tick during a run, for benches that drain by
/// themselves or measure callers with no drain in the way. The interval
/// thread wakes at wall-clock multiples of the interval, and its drains
/// are stamped with the interval's start: with an hour, a run that crossed
/// the full hour had the thread drain the registry in the middle of it
/// (the series bench then found a fifth of its lines taken, and failed);
/// with centuries, the interval in progress began in 1970 and the last
/// drain's lines carry timestamp 0. This one is a minute shorter than the
/// time since the epoch: the interval in progress began a minute ago, and
/// the next boundary is decades away.
pub fn no_tick() -> Duration {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(since_epoch.as_secs().saturating_sub(60).max(3600))
}

/// Whether this bench binary runs in full (`cargo bench` passes `--bench`)
/// rather than as a smoke test under `cargo test`.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The target directory this bench binary was built in
/// (`target/<profile>/deps/NAME-HASH` → `target`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    match exe.ancestors().nth(3) {
        Some(target) => target.to_path_buf(),
        None => PathBuf::from("target"),
    }
}

/// Where a run writes its fragments and charts: `target/bench-results`
/// for a full run, `target/bench-results/smoke` for a smoke run.
pub fn results_dir(full: bool) -> PathBuf {
    let dir = target_dir().join("bench-results");
    if full {
        dir
    } else {
        dir.join("smoke")
    }
}

/// Where criterion writes its estimates: `$CRITERION_HOME`, else
/// `criterion/` in the target directory.
pub fn criterion_dir() -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => target_dir().join("criterion"),
    }
}

/// The median time per iteration, in ns, of criterion benchmark `id`
/// (`group/name`) if criterion wrote it at or after `since` (this run).
pub fn median_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json = std::fs::read_to_string(&path).ok()?;
    // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":N,...},...}
    let median = &json[json.find("\"median\"")?..];
    let key = "\"point_estimate\":";
    let value = &median[median.find(key)? + key.len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

/// A markdown fragment that `./scripts/bench` puts between the markers
/// `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` of BENCHMARKS.md.
/// Lines are printed as they are added, and the whole is written to
/// `DIR/fragments/NAME.md` by [`Fragment::save`].
pub struct Fragment {
    name: &'static str,
    text: String,
}

impl Fragment {
    pub fn new(name: &'static str) -> Fragment {
        Fragment {
            name,
            text: String::new(),
        }
    }

    /// Adds a line (and prints it).
    pub fn line(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        println!("{line}");
        let _ = writeln!(self.text, "{line}");
    }

    /// Writes it under `dir/fragments/`; panics if it cannot (a run whose
    /// results are lost must not look like a success).
    pub fn save(&self, dir: &Path) {
        let dir = dir.join("fragments");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{}.md", self.name));
        std::fs::write(&path, &self.text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// `met` or `MISSED`.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// Replaces the text between every `<!-- bench:NAME -->` and
/// `<!-- /bench:NAME -->` marker line of `doc` with `fragment(NAME)`.
/// Fails, changing nothing, if a marker has no fragment, an opening marker
/// no closing one, or markers nest: a partial run must not leave the
/// document half updated.
pub fn splice(doc: &str, fragment: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(doc.len());
    let mut open: Option<&str> = None;
    let mut replaced = 0;
    for line in doc.split_inclusive('\n') {
        let marker = line.trim();
        if let Some(name) = marker
            .strip_prefix("<!-- /bench:")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim)
        {
            if open != Some(name) {
                return Err(format!("closing marker of {name:?} without its opening"));
            }
            open = None;
            out.push_str(line);
        } else if let Some(name) = marker
            .strip_prefix("<!-- bench:")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim)
        {
            if let Some(outer) = open {
                return Err(format!("marker {name:?} inside {outer:?}"));
            }
            let text = fragment(name)
                .ok_or_else(|| format!("no fragment {name:?} in this run's results"))?;
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
            open = Some(name);
            replaced += 1;
        } else if open.is_none() {
            out.push_str(line);
        }
    }
    if let Some(name) = open {
        return Err(format!("marker {name:?} is never closed"));
    }
    if replaced == 0 {
        return Err("no <!-- bench:NAME --> markers".into());
    }
    Ok(out)
}

pub fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "date unknown".to_owned())
}

/// The short commit, `(with uncommitted changes)` if the tree differs.
pub fn commit() -> String {
    let git = |args: &[&str]| Command::new("git").args(args).output().ok();
    let hash = git(&["rev-parse", "--short", "HEAD"])
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let dirty = git(&["diff", "--quiet", "HEAD"]).is_some_and(|o| !o.status.success());
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_between_markers_only() {
        let doc = "# T\n<!-- bench:a -->\nold a\nold a 2\n<!-- /bench:a -->\nkept\n<!-- bench:b -->\n<!-- /bench:b -->\nend\n";
        let got = splice(doc, |name| Some(format!("new {name}\n"))).unwrap();
        assert_eq!(
            got,
            "# T\n<!-- bench:a -->\nnew a\n<!-- /bench:a -->\nkept\n<!-- bench:b -->\nnew b\n<!-- /bench:b -->\nend\n"
        );
        // Idempotent.
        assert_eq!(
            splice(&got, |name| Some(format!("new {name}\n"))).unwrap(),
            got
        );
    }

    #[test]
    fn splice_refuses_missing_fragments_and_broken_markers() {
        let doc = "<!-- bench:a -->\nx\n<!-- /bench:a -->\n";
        assert!(splice(doc, |_| None).unwrap_err().contains("no fragment"));
        assert!(splice("<!-- bench:a -->\n", |_| Some(String::new())).is_err());
        assert!(splice("<!-- /bench:a -->\n", |_| Some(String::new())).is_err());
        assert!(splice(
            "<!-- bench:a -->\n<!-- bench:b -->\n<!-- /bench:b -->\n<!-- /bench:a -->\n",
            |_| Some(String::new())
        )
        .is_err());
        assert!(splice("no markers\n", |_| Some(String::new())).is_err());
    }

    #[test]
    fn fragments_are_saved_where_splice_finds_them() {
        let dir = std::env::temp_dir().join(format!("graphyte-benches-{}", std::process::id()));
        let mut f = Fragment::new("unit");
        f.line("| a | b |");
        f.save(&dir);
        let text = std::fs::read_to_string(dir.join("fragments/unit.md")).unwrap();
        assert_eq!(text, "| a | b |\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
