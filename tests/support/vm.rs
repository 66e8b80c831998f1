//! A throw-away VictoriaMetrics (single node) for the tests: Graphite's
//! plaintext protocol in, every stored sample back out through its
//! `/api/v1/export` (issue 20).
//!
//! `./scripts/test` finds or fetches Debian's `victoria-metrics` (no root)
//! and exports `GRAPHYTE_VM_BIN`. [`VmServer::start_or_skip`] runs
//!
//! ```text
//! victoria-metrics -storageDataPath=DIR/data -httpListenAddr=127.0.0.1:HTTP
//!     -graphiteListenAddr=127.0.0.1:G -memory.allowedBytes=256MiB
//! ```
//!
//! on free loopback ports (the Graphite listener is TCP and UDP on `G`),
//! through the one harness ([`super::child`]): ready when it alone holds
//! the three sockets and `/health` answers 200; killed on drop and with the
//! test's thread. What it does with graphyte's lines (measured, version
//! 1.79.5): `a.b.c V TS` becomes the series `{__name__="a.b.c"}`, a tagged
//! `a.b;k=v` becomes `{__name__="a.b", k="v"}`; timestamps are kept to the
//! second (`-graphiteTrimTimestamp=1s`); values keep 12 significant decimal
//! digits ([`same_stored_value`]).
//!
//! Without the binary the tests skip by the one rule ([`super::skip`]),
//! which fails them under `./scripts/test`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::child::{self, http, ChildServer, Launch, Proto, Ready};

/// Env var naming the victoria-metrics binary (set by ./scripts/test).
pub const VM_ENV: &str = "GRAPHYTE_VM_BIN";
const START_ATTEMPTS: usize = 5;
const POLL: Duration = Duration::from_millis(100);

/// Finds victoria-metrics: `$GRAPHYTE_VM_BIN`, else `victoria-metrics` on
/// `PATH`, else `<repo>/.vm/usr/bin/victoria-metrics`.
pub fn locate() -> Result<PathBuf, String> {
    child::locate_binary(VM_ENV, "victoria-metrics", ".vm/usr/bin/victoria-metrics")
}

fn how_to_get_vm(why: &str) -> String {
    format!(
        "VictoriaMetrics is not available ({why}). Run the tests with ./scripts/test, which \
         fetches Debian's victoria-metrics package without root (apt-get download + dpkg-deb \
         -x) and sets {VM_ENV}; or point {VM_ENV} at a victoria-metrics binary."
    )
}

/// One stored series: its labels (`__name__` included) and samples
/// (milliseconds, value), oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(u64, f64)>,
}

/// The labels VictoriaMetrics makes of a Graphite name: the path as
/// `__name__`, each `;k=v` tag as a label.
pub fn labels_of(graphite_name: &str) -> BTreeMap<String, String> {
    let mut parts = graphite_name.split(';');
    let mut labels = BTreeMap::new();
    labels.insert("__name__".to_owned(), parts.next().unwrap_or("").to_owned());
    for tag in parts {
        let (k, v) = tag.split_once('=').unwrap_or((tag, ""));
        labels.insert(k.to_owned(), v.to_owned());
    }
    labels
}

/// Whether VictoriaMetrics storing `sent` as `stored` kept it: equal, or
/// equal to 12 significant decimal digits (it keeps no more: `3.141592653589793`
/// is stored as `3.141592653589`), i.e. less than one unit of the 12th
/// digit apart.
pub fn same_stored_value(sent: f64, stored: f64) -> bool {
    if sent == stored {
        return true;
    }
    if !sent.is_finite() || sent == 0.0 {
        return false;
    }
    let unit = 10f64.powi(sent.abs().log10().floor() as i32 - 11);
    (sent - stored).abs() < unit
}

/// A victoria-metrics child process on loopback, its data in a temporary
/// directory. Killed, and the directory removed, on drop.
pub struct VmServer {
    /// Declared first: killed before the directory goes.
    server: ChildServer,
    dir: PathBuf,
    http_port: u16,
    graphite_port: u16,
}

impl VmServer {
    /// Starts one, or skips by the one rule.
    pub fn start_or_skip() -> Option<VmServer> {
        let bin = super::or_skip(
            locate().map_err(|why| how_to_get_vm(&why)),
            "VictoriaMetrics not available",
        )?;
        Some(Self::start(&bin))
    }

    /// Starts `bin`; panics if it cannot.
    pub fn start(bin: &Path) -> VmServer {
        let dir = child::fresh_dir("vm");
        let (server, http_port, graphite_port) =
            child::retry_on_clash("victoria-metrics", START_ATTEMPTS, || {
                let ports = child::pick_ports(&[false, true]);
                let (http_port, graphite_port) = (ports[0], ports[1]);
                let launch = Launch::new("victoria-metrics", bin, &dir)
                    .arg(format!("-storageDataPath={}", dir.join("data").display()))
                    .arg(format!("-httpListenAddr=127.0.0.1:{http_port}"))
                    .arg(format!("-graphiteListenAddr=127.0.0.1:{graphite_port}"))
                    // Its caches; the default is 60 % of the machine's memory.
                    .arg("-memory.allowedBytes=256MiB")
                    .clash_marker("address already in use")
                    .ready(Ready::Sockets(vec![
                        (Proto::Tcp, http_port),
                        (Proto::Tcp, graphite_port),
                        (Proto::Udp, graphite_port),
                    ]))
                    .ready(Ready::Health {
                        port: http_port,
                        path: "/health".into(),
                    });
                ChildServer::spawn(&launch).map(|s| (s, http_port, graphite_port))
            });
        VmServer {
            server,
            dir,
            http_port,
            graphite_port,
        }
    }

    /// The Graphite (plaintext) port, TCP and UDP.
    pub fn port(&self) -> u16 {
        self.graphite_port
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// `127.0.0.1`-VictoriaMetrics config for graphyte.
    pub fn config(&self) -> graphyte::Config {
        graphyte::Config::new("127.0.0.1").port(self.graphite_port)
    }

    pub fn server(&mut self) -> &mut ChildServer {
        &mut self.server
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Its peak resident memory (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        self.server.peak_rss_kib().unwrap_or(0) / 1024
    }

    /// Makes what it received searchable now (`/internal/force_flush`)
    /// rather than within its ~1 s flush.
    pub fn flush(&self) {
        let answer = http::get(self.http_port, "/internal/force_flush");
        assert!(
            matches!(answer, Ok((200, _))),
            "force_flush: {answer:?}\n{}",
            child::tail(&self.log(), 20)
        );
    }

    /// Every series whose `__name__` matches the regex `name_regex`, from
    /// `/api/v1/export` over all time.
    pub fn export(&self, name_regex: &str) -> Vec<Series> {
        let selector = format!("{{__name__=~\"{name_regex}\"}}");
        let (status, body) = http::post_form(
            self.http_port,
            "/api/v1/export",
            &[("match[]", &selector), ("start", "0")],
        )
        .unwrap_or_else(|e| panic!("/api/v1/export {selector}: {e}"));
        assert_eq!(status, 200, "/api/v1/export {selector}: {body}");
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| parse_export_line(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Every series under `prefix.` (or named `prefix`), keyed by labels.
    pub fn export_prefix(&self, prefix: &str) -> BTreeMap<BTreeMap<String, String>, Series> {
        let regex = format!("{}([.].*)?", prefix.replace('.', "[.]"));
        self.export(&regex)
            .into_iter()
            .map(|s| (s.labels.clone(), s))
            .collect()
    }

    /// Polls (flushing first) until `ready(points)` holds for the series of
    /// every Graphite name in `names`, all under `prefix`, or `timeout`;
    /// returns the points of each name (empty where it has none) and every
    /// series found under the prefix.
    pub fn wait_for(
        &self,
        prefix: &str,
        names: &[String],
        timeout: Duration,
        ready: impl Fn(&str, &[(u64, f64)]) -> bool,
    ) -> Stored {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush();
            let all = self.export_prefix(prefix);
            let points: BTreeMap<String, Vec<(u64, f64)>> = names
                .iter()
                .map(|name| {
                    let found = all.get(&labels_of(name)).map(|s| s.points.clone());
                    (name.clone(), found.unwrap_or_default())
                })
                .collect();
            let done = points.iter().all(|(name, p)| ready(name, p));
            if done || Instant::now() >= deadline {
                return Stored { points, all };
            }
            thread::sleep(POLL);
        }
    }

    /// A counter of its own `/metrics` page (the sum over the label sets
    /// of `name`): `vm_rows_inserted_total`, ...
    pub fn own_metric(&self, name: &str) -> f64 {
        let (status, body) = http::get(self.http_port, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        body.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for VmServer {
    fn drop(&mut self) {
        self.server.kill();
        child::remove_dir(&self.dir, "VictoriaMetrics");
    }
}

/// What [`VmServer::wait_for`] found.
pub struct Stored {
    /// Per name asked for: its samples (ms, value).
    pub points: BTreeMap<String, Vec<(u64, f64)>>,
    /// Every series under the prefix, by labels.
    pub all: BTreeMap<BTreeMap<String, String>, Series>,
}

impl Stored {
    /// The series under the prefix that are not among `names`.
    pub fn others(&self, names: &[String]) -> Vec<&Series> {
        let asked: Vec<BTreeMap<String, String>> = names.iter().map(|n| labels_of(n)).collect();
        self.all
            .iter()
            .filter(|(labels, _)| !asked.contains(labels))
            .map(|(_, s)| s)
            .collect()
    }
}

/// One line of `/api/v1/export`:
/// `{"metric":{"k":"v",...},"values":[...],"timestamps":[...]}`.
fn parse_export_line(line: &str) -> Result<Series, String> {
    let value = json::parse(line)?;
    let object = value.object().ok_or("not an object")?;
    let mut labels = BTreeMap::new();
    for (k, v) in object
        .get("metric")
        .and_then(json::Value::object)
        .ok_or("no metric")?
    {
        labels.insert(
            k.clone(),
            v.string().ok_or("label not a string")?.to_owned(),
        );
    }
    let numbers = |key: &str| -> Result<Vec<f64>, String> {
        object
            .get(key)
            .and_then(json::Value::array)
            .ok_or(format!("no {key}"))?
            .iter()
            .map(|v| v.number().ok_or(format!("{key}: not a number: {v:?}")))
            .collect()
    };
    let values = numbers("values")?;
    let timestamps = numbers("timestamps")?;
    if values.len() != timestamps.len() {
        return Err("values and timestamps differ in length".into());
    }
    let mut points: Vec<(u64, f64)> = timestamps
        .into_iter()
        .map(|t| t as u64)
        .zip(values)
        .collect();
    points.sort_by_key(|p| p.0);
    Ok(Series { labels, points })
}

/// Just enough JSON for `/api/v1/export` (objects, arrays, strings with
/// escapes, numbers, literals).
mod json {
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(BTreeMap<String, Value>),
    }

    impl Value {
        pub fn object(&self) -> Option<&BTreeMap<String, Value>> {
            match self {
                Value::Object(o) => Some(o),
                _ => None,
            }
        }
        pub fn array(&self) -> Option<&[Value]> {
            match self {
                Value::Array(a) => Some(a),
                _ => None,
            }
        }
        pub fn string(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }
        pub fn number(&self) -> Option<f64> {
            match self {
                Value::Number(n) => Some(*n),
                // NaN and infinities come as strings.
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing text at {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", c as char, self.i))
            }
        }
        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut map = BTreeMap::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(map));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.eat(b':')?;
                        map.insert(key, self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(map));
                            }
                            _ => return Err(format!("bad object at {}", self.i)),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return Err(format!("bad array at {}", self.i)),
                        }
                    }
                }
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(b't') => self.literal("true", Value::Bool(true)),
                Some(b'f') => self.literal("false", Value::Bool(false)),
                Some(b'n') => self.literal("null", Value::Null),
                Some(_) => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && matches!(
                            self.s[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    text.parse()
                        .map(Value::Number)
                        .map_err(|e| format!("number {text:?} at {start}: {e}"))
                }
                None => Err("unexpected end".into()),
            }
        }
        fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.i))
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = Vec::new();
            loop {
                let c = *self.s.get(self.i).ok_or("unterminated string")?;
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                    b'\\' => {
                        let e = *self.s.get(self.i).ok_or("bad escape")?;
                        self.i += 1;
                        match e {
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'u' => {
                                let hex = self.s.get(self.i..self.i + 4).ok_or("bad \\u")?;
                                self.i += 4;
                                let code = u32::from_str_radix(
                                    std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                    16,
                                )
                                .map_err(|e| e.to_string())?;
                                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                                let mut buf = [0; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                            other => out.push(other),
                        }
                    }
                    other => out.push(other),
                }
            }
        }
    }
}
