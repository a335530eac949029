//! Configuration from command-line flags and environment variables.

use std::net::SocketAddr;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use kith_core::{Rate, WriteKind, WriteRates};

use crate::client_ip::ForwardedHeader;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The reference server of Kith: REST and WebSocket over SQLite or
/// PostgreSQL.
///
/// Without a subcommand it serves, with the flags below.
#[derive(Debug, Clone, Parser)]
#[command(name = "kith-server", version, about)]
pub struct Settings {
    /// A one-off task to run instead of serving (the server's flags are then
    /// ignored).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "KITH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database URL: a SQLite file (`sqlite://kith.db`, created on first
    /// start), `sqlite::memory:`, or a PostgreSQL database
    /// (`postgres://user:password@host/db`, migrated on start).
    #[arg(long, env = "KITH_DATABASE_URL", default_value = "sqlite://kith.db")]
    pub database_url: String,
    /// Origins allowed by CORS, comma-separated (`*` for any). None by default.
    #[arg(long, env = "KITH_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Log filter, in `tracing` syntax (`info`, `kith_server=debug,info`...).
    #[arg(long, env = "KITH_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, env = "KITH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Largest request body in bytes.
    #[arg(long, env = "KITH_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Requests taking longer than this many seconds are answered with 408.
    #[arg(
        long = "request-timeout",
        alias = "request-timeout-secs",
        env = "KITH_REQUEST_TIMEOUT",
        default_value_t = 30
    )]
    pub request_timeout_secs: u64,
    /// Login and registration attempts allowed per client address per minute.
    #[arg(long, env = "KITH_AUTH_PER_MINUTE", default_value_t = 20)]
    pub auth_per_minute: u32,
    /// Messages a user may send at once after a pause.
    #[arg(long, env = "KITH_SEND_BURST", default_value_t = 20)]
    pub send_burst: u32,
    /// Messages a user may send per second, sustained.
    #[arg(long, env = "KITH_SEND_PER_SECOND", default_value_t = 5)]
    pub send_per_second: u32,
    /// Per-user limits of other writes, as `KIND=BURST/PER_HOUR` or
    /// `KIND=off` (repeat the flag, or separate with commas in the
    /// variable). Kinds: `friend_request`, `follow`, `post`, `comment`,
    /// `reaction`, `upload`. Kinds not named keep Kith's defaults
    /// (`kith_core::WriteRates::default`).
    #[arg(
        long = "write-rate",
        env = "KITH_WRITE_RATES",
        value_delimiter = ',',
        value_parser = parse_write_rate
    )]
    pub write_rates: Vec<(WriteKind, Option<Rate>)>,
    /// Switch off every rate limit (login/register, sending and every other
    /// write), for benchmarks.
    #[arg(
        long,
        env = "KITH_NO_RATE_LIMITS",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub no_rate_limits: bool,
    /// Allow direct messages between users who are not friends.
    #[arg(
        long,
        env = "KITH_OPEN_DIRECT_MESSAGES",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub open_direct_messages: bool,
    /// Seconds open WebSockets get to close on shutdown.
    #[arg(
        long = "shutdown-grace",
        alias = "shutdown-grace-secs",
        env = "KITH_SHUTDOWN_GRACE",
        default_value_t = 5
    )]
    pub shutdown_grace_secs: u64,
    /// A reverse proxy trusted to say whom it forwards for: an address or a
    /// CIDR block (repeat the flag, or separate with commas in the variable).
    /// For requests from one, the client's address (for the login and
    /// registration limit) is the rightmost address in `--forwarded-header`
    /// that is not a trusted proxy. None by default: the peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "KITH_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_net
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies append addresses to. Only this one is
    /// read: a client can send the other with anything in it.
    #[arg(
        long,
        env = "KITH_FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: ForwardedHeader,
    /// Set TCP_NODELAY on accepted connections, so that small responses and
    /// WebSocket frames are sent at once instead of waiting for Nagle's
    /// algorithm. `false` is there to measure the difference.
    #[arg(
        long,
        env = "KITH_TCP_NODELAY",
        default_value_t = true,
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub tcp_nodelay: bool,
    /// The URL clients reach this server at (`https://kith.example.com`),
    /// for the media URLs it hands out (avatar and cover URLs, signed
    /// URLs). Without it, `http://` and the request's `Host` header.
    #[arg(long, env = "KITH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where uploaded media is stored: a directory (created if missing);
    /// `s3://<bucket>/<prefix>` for an S3-compatible bucket, configured by
    /// the `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`...); or
    /// `:memory:` to keep it in memory only. Several nodes must share it
    /// (see "Media" in docs/ARCHITECTURE.md).
    #[arg(long, env = "KITH_MEDIA_DIR", default_value = "kith-media")]
    pub media_dir: String,
    /// Largest upload (`POST /api/v1/media`) in bytes; that route only.
    #[arg(long, env = "KITH_MEDIA_BODY_LIMIT", default_value_t = 10 * 1024 * 1024)]
    pub media_body_limit: usize,
    /// Uploads taking longer than this many seconds (receiving and
    /// processing) are answered with 408; that route only.
    #[arg(
        long = "media-timeout",
        env = "KITH_MEDIA_TIMEOUT",
        default_value_t = 60
    )]
    pub media_timeout_secs: u64,
    /// The largest width and height of an uploaded image, in pixels.
    #[arg(long, env = "KITH_MEDIA_MAX_DIMENSION", default_value_t = 8192)]
    pub media_max_dimension: u32,
    /// Seconds an upload may stay unattached before it is removed.
    #[arg(long = "media-grace", env = "KITH_MEDIA_GRACE", default_value_t = 24 * 60 * 60)]
    pub media_grace_secs: u64,
    /// Seconds a signed media URL stays valid.
    #[arg(long = "media-url-ttl", env = "KITH_MEDIA_URL_TTL", default_value_t = 60 * 60)]
    pub media_url_ttl_secs: u64,
    /// The secret media URLs are signed with. Several nodes must share one;
    /// without it each server draws a random one at start (its signed URLs
    /// then work on that server only, until it restarts).
    #[arg(long, env = "KITH_MEDIA_SECRET", hide_env_values = true)]
    pub media_secret: Option<String>,
}

/// The subcommands of `kith-server`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Copy a SQLite deployment into an empty PostgreSQL database (ids,
    /// sequences, passwords and sessions included), then exit. Stop the
    /// server first (README: "Moving from SQLite to PostgreSQL").
    MigrateData(MigrateData),
}

/// The arguments of `kith-server migrate-data`.
#[derive(Debug, Clone, Args)]
pub struct MigrateData {
    /// The SQLite database to copy (`sqlite://kith.db` or a path); opened
    /// read-only.
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL database to fill (`postgres://user:password@host/db`).
    /// It must hold no Kith data; its schema is created if missing.
    #[arg(long)]
    pub to: String,
    /// Rows per INSERT statement.
    #[arg(long, default_value_t = crate::migrate::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
}

/// An address or a CIDR block (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`).
fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR block"))
}

/// `KIND=BURST/PER_HOUR` or `KIND=off`.
fn parse_write_rate(s: &str) -> Result<(WriteKind, Option<Rate>), String> {
    let (kind, rate) = s
        .trim()
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KIND=BURST/PER_HOUR or KIND=off"))?;
    let kind = WriteKind::parse(kind.trim()).ok_or_else(|| {
        let kinds: Vec<&str> = WriteKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {kind:?}; one of {}", kinds.join(", "))
    })?;
    let rate = rate.trim();
    if rate == "off" {
        return Ok((kind, None));
    }
    let numbers = rate
        .split_once('/')
        .and_then(|(burst, per_hour)| Some((burst.parse().ok()?, per_hour.parse().ok()?)));
    match numbers {
        Some((burst, per_hour)) => Ok((kind, Some(Rate::per_hour(burst, per_hour)))),
        None => Err(format!(
            "{rate:?} is not BURST/PER_HOUR (two whole numbers) or off"
        )),
    }
}

impl Settings {
    /// The configured write limits: Kith's defaults changed by
    /// `--write-rate`, or none with `--no-rate-limits`.
    pub fn write_rates(&self) -> WriteRates {
        if self.no_rate_limits {
            return WriteRates::none();
        }
        let mut rates = WriteRates::default();
        for &(kind, rate) in &self.write_rates {
            rates.set(kind, rate);
        }
        rates
    }

    /// The settings tests and embedders start from: an in-memory database and
    /// media store on an ephemeral loopback port, defaults elsewhere (whatever `KITH_*`
    /// variables the environment holds).
    pub fn for_tests() -> Self {
        match Self::from_args([
            "kith-server",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
            "--media-dir",
            ":memory:",
        ]) {
            Ok(settings) => settings,
            Err(e) => e.exit(),
        }
    }

    /// Parses command-line arguments (the first is the program name) like
    /// the binary does, but without reading `KITH_*` environment variables,
    /// so that the result depends on `args` alone.
    ///
    /// # Errors
    /// clap's error for invalid arguments.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_rates_override_the_defaults() {
        let s = Settings::from_args([
            "kith-server",
            "--write-rate",
            "post=5/30",
            "--write-rate",
            "follow=off",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let rates = s.write_rates();
        assert_eq!(rates.get(WriteKind::Post), Some(Rate::per_hour(5, 30)));
        assert_eq!(rates.get(WriteKind::Follow), None);
        let defaults = WriteRates::default();
        assert_eq!(
            rates.get(WriteKind::Comment),
            defaults.get(WriteKind::Comment)
        );
        for bad in ["post", "post=5", "post=a/b", "poster=1/1", "post=1/2/3"] {
            assert!(
                Settings::from_args(["kith-server", "--write-rate", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags_parse_and_tests_ignore_the_environment() {
        let s = Settings::from_args([
            "kith-server",
            "--request-timeout",
            "3",
            "--shutdown-grace",
            "2",
            "--cors-origins",
            "http://a.example,http://b.example",
            "--no-rate-limits",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "192.0.2.7",
            "--forwarded-header",
            "forwarded",
            "--tcp-nodelay",
            "false",
            "--media-dir",
            "s3://bucket/kith",
            "--media-body-limit",
            "5000",
            "--media-timeout",
            "9",
            "--media-grace",
            "7",
            "--media-url-ttl",
            "60",
            "--media-secret",
            "shared",
            "--public-url",
            "https://kith.example",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.media_dir, "s3://bucket/kith");
        assert_eq!(s.media_body_limit, 5000);
        assert_eq!(s.media_timeout_secs, 9);
        assert_eq!(s.media_grace_secs, 7);
        assert_eq!(s.media_url_ttl_secs, 60);
        assert_eq!(s.media_secret.as_deref(), Some("shared"));
        assert_eq!(s.public_url.as_deref(), Some("https://kith.example"));
        assert_eq!(s.media_max_dimension, 8192);
        assert_eq!(s.request_timeout_secs, 3);
        assert_eq!(s.shutdown_grace_secs, 2);
        assert_eq!(s.cors_origins, ["http://a.example", "http://b.example"]);
        assert!(s.no_rate_limits);
        assert!(!s.open_direct_messages);
        let proxies: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32"]);
        assert_eq!(s.forwarded_header, ForwardedHeader::Forwarded);
        assert!(!s.tcp_nodelay);
        assert!(Settings::from_args(["kith-server", "--trusted-proxy", "nope"]).is_err());
        assert_eq!(s.write_rates(), WriteRates::none());
        let t = Settings::for_tests();
        assert_eq!(t.listen.port(), 0);
        assert_eq!(t.database_url, "sqlite::memory:");
        assert_eq!(t.body_limit, 64 * 1024);
        assert_eq!(t.media_body_limit, 10 * 1024 * 1024);
        assert_eq!(t.media_dir, ":memory:");
        assert!(t.media_secret.is_none() && t.public_url.is_none());
        assert!(!t.no_rate_limits);
        assert!(t.trusted_proxies.is_empty());
        assert_eq!(t.forwarded_header, ForwardedHeader::XForwardedFor);
        assert!(t.tcp_nodelay);
        assert!(t.command.is_none());
    }

    #[test]
    fn migrate_data_is_a_subcommand() {
        let s = Settings::from_args([
            "kith-server",
            "migrate-data",
            "--from",
            "sqlite://kith.db",
            "--to",
            "postgres://kith@localhost/kith",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        match s.command {
            Some(Command::MigrateData(m)) => {
                assert_eq!(m.from, "sqlite://kith.db");
                assert_eq!(m.to, "postgres://kith@localhost/kith");
                assert_eq!(m.batch_size, crate::migrate::DEFAULT_BATCH_SIZE);
            }
            None => panic!("no subcommand"),
        }
        // Both ends are required.
        assert!(Settings::from_args(["kith-server", "migrate-data", "--from", "a.db"]).is_err());
    }
}
