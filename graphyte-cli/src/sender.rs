//! From the options to a graphyte [`Sender`]. graphyte parses `--server`
//! (`host`, `host:port`, `[v6]:port`: [`Config::new`]) and checks the prefix
//! and the tags ([`Sender::new`]); what it refuses is a usage error here.

use graphyte::{Config, Error, Protocol, Sender, TcpTransport, Transport, UdpTransport};

use crate::args::{usage, Options, UsageError};

/// The configuration the options ask for: server, port, protocol, timeout,
/// prefix and tags.
pub fn config(options: &Options) -> Config {
    let mut config = Config::new(&options.server)
        .timeout(options.timeout)
        .prefix(&options.prefix);
    if let Some(port) = options.port {
        config = config.port(port);
    }
    if options.udp {
        config = config.protocol(Protocol::Udp);
    }
    for (key, value) in &options.tags {
        config = config.tag(key, value);
    }
    config
}

/// [`config`] with the TLS settings, if `--tls` was given (single mode).
pub fn config_with_tls(options: &Options) -> Result<Config, UsageError> {
    let config = config(options);
    #[cfg(feature = "tls")]
    if let Some(tls) = tls(options)? {
        return Ok(config.tls(tls));
    }
    Ok(config)
}

/// The transport `config` asks for, made here (bulk mode wraps it): TCP,
/// UDP, or TLS with `--tls`.
pub fn transport(options: &Options, config: &Config) -> Result<Box<dyn Transport>, UsageError> {
    let (host, port) = host_and_port(config);
    #[cfg(feature = "tls")]
    if let Some(tls) = tls(options)? {
        let transport = graphyte::TlsTransport::new(host, port, options.timeout, &tls)
            .map_err(|e| UsageError(refused_option(options, e)))?;
        return Ok(Box::new(transport));
    }
    Ok(if options.udp {
        Box::new(UdpTransport::new(
            host,
            port,
            graphyte::DEFAULT_MAX_DATAGRAM,
        ))
    } else {
        Box::new(TcpTransport::new(host, port, options.timeout))
    })
}

/// The TLS settings of `--tls`, `--ca`, `--server-name`, `--cert` and
/// `--key`; the certificate and key files are read here, the CA file by
/// graphyte (both refuse what they cannot use, as usage errors).
#[cfg(feature = "tls")]
fn tls(options: &Options) -> Result<Option<graphyte::Tls>, UsageError> {
    let o = &options.tls;
    if !o.enabled {
        return Ok(None);
    }
    let mut tls = graphyte::Tls::new();
    if let Some(ca) = &o.ca {
        tls = tls.ca_file(ca);
    }
    if let Some(name) = &o.server_name {
        tls = tls.server_name(name);
    }
    let read = |option: &str, path: &str| {
        std::fs::read(path).or_else(|e| usage(format!("cannot read --{option} {path:?}: {e}")))
    };
    if let (Some(cert), Some(key)) = (&o.cert, &o.key) {
        tls = tls.client_auth(read("cert", cert)?, read("key", key)?);
    }
    Ok(Some(tls))
}

/// What to say when graphyte refuses the sender of `options`.
fn refused_option(options: &Options, e: Error) -> String {
    match e {
        // graphyte's TLS messages name the setting ("TLS: cannot read CA file ...").
        Error::InvalidConfig(reason) if reason.starts_with("TLS") => reason,
        Error::InvalidConfig(reason) => {
            format!("invalid --server {:?}: {reason}", options.server)
        }
        Error::InvalidName { name, reason } => format!("invalid --prefix {name:?}: {reason}"),
        Error::InvalidTag {
            key, value, reason, ..
        } => format!("invalid --tag {key}={value}: {reason}"),
        other => other.to_string(),
    }
}

/// Makes the sender, or says which option graphyte refused.
pub fn start(options: &Options, config: Config) -> Result<Sender, UsageError> {
    let sender = Sender::new(config).map_err(|e| UsageError(refused_option(options, e)))?;
    if options.port.is_some() && names_a_port(&options.server) {
        return usage(format!(
            "invalid --server {:?}: it names a port and so does -p/--port; give the port once",
            options.server
        ));
    }
    Ok(sender)
}

/// The host and port of `config`, read back from [`Config::address`]
/// (`host:port`, or `[v6]:port`): `Config` has no getters for them.
pub fn host_and_port(config: &Config) -> (String, u16) {
    let address = config.address();
    let (host, port) = address.rsplit_once(':').unwrap_or((&address, ""));
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    (
        host.to_owned(),
        port.parse().unwrap_or(graphyte::DEFAULT_PORT),
    )
}

/// Whether `server` carries a port of its own: graphyte's parser found a
/// host that is not the whole of it (brackets aside).
fn names_a_port(server: &str) -> bool {
    let (host, _) = host_and_port(&Config::new(server));
    let server = server.trim();
    server != host && server != format!("[{host}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Command};

    fn options(args: &[&str]) -> Options {
        match parse(args.iter().copied()) {
            Ok(Command::Run(options)) => *options,
            other => panic!("{args:?}: expected options, got {other:?}"),
        }
    }

    /// Where the sender of `args` sends to, or the usage error.
    fn address(args: &[&str]) -> Result<String, String> {
        let options = options(args);
        start(&options, config(&options))
            .map(|sender| sender.address().to_owned())
            .map_err(|e| e.0)
    }

    #[test]
    fn servers_are_parsed_by_graphyte() {
        assert_eq!(address(&["m", "1"]).unwrap(), "localhost:2003");
        assert_eq!(address(&["-s", "::1", "m", "1"]).unwrap(), "[::1]:2003");
        assert_eq!(address(&["-s", "[::1]", "m", "1"]).unwrap(), "[::1]:2003");
        assert_eq!(
            address(&["-s", "10.0.0.1", "m", "1"]).unwrap(),
            "10.0.0.1:2003"
        );
        assert_eq!(address(&["-s", "h:2004", "m", "1"]).unwrap(), "h:2004");
        assert_eq!(
            address(&["-s", "[::1]:2004", "m", "1"]).unwrap(),
            "[::1]:2004"
        );
        assert_eq!(
            address(&["-s", "h", "-p", "2004", "m", "1"]).unwrap(),
            "h:2004"
        );
        assert_eq!(address(&["-us", "h", "m", "1"]).unwrap(), "udp://h:2003");
        for both in [["-s", "h:2003", "-p", "2003"], ["-p", "1", "-s", "[::1]:2"]] {
            let mut args = both.to_vec();
            args.extend(["m", "1"]);
            assert!(
                address(&args).unwrap_err().contains("-p/--port"),
                "{args:?}"
            );
        }
        for bad in ["", " ", ":2003", "h:x", "h:99999", "[::1", "[::1]x"] {
            let err = address(&["-s", bad, "m", "1"]).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid --server {bad:?}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn host_and_port_read_back() {
        for (server, host, port) in [
            ("h", "h", 2003),
            ("h:7", "h", 7),
            ("::1", "::1", 2003),
            ("[fe80::1]:9", "fe80::1", 9),
        ] {
            assert_eq!(
                host_and_port(&Config::new(server)),
                (host.to_owned(), port),
                "{server}"
            );
        }
    }

    #[test]
    fn prefix_and_tags_are_checked_by_graphyte() {
        let o = options(&[
            "--prefix", "pre", "--tag", "env=prod", "--tag", "k=1", "--tag", "k=2", "m", "1",
        ]);
        let sender = start(&o, config(&o)).expect("valid options");
        let mut line = Vec::new();
        sender
            .line_format()
            .format_into(
                &mut line,
                "m",
                &[],
                1,
                graphyte::Timestamp::from(1_700_000_000),
            )
            .expect("a valid line");
        assert_eq!(line, b"pre.m;env=prod;k=2 1 1700000000\n");
        let cases: &[(&[&str], &str)] = &[
            (&["--tag", "k=", "foo", "1"], "invalid --tag k="),
            (&["--tag", "k;x=v", "foo", "1"], "invalid --tag"),
            (
                &["--prefix", "a..b", "foo", "1"],
                "invalid --prefix \"a..b\"",
            ),
            (&["--prefix", "a b", "-"], "invalid --prefix"),
        ];
        for (args, expected) in cases {
            let o = options(args);
            let err = start(&o, config(&o)).unwrap_err().0;
            assert!(
                err.contains(expected),
                "{args:?}: {err:?} lacks {expected:?}"
            );
        }
    }
}
