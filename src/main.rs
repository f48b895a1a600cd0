//! The `keyway` binary: command line, logging, configuration, and running the
//! server until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keyway::backend::AnyBackend;
use keyway::config::Config;
use keyway::server::Server;
use keyway::workers::Workers;

/// Every request allocates and frees buffers of a few KiB (a session's
/// value, read, forwarded, copied into the reply); glibc's malloc spent
/// about 8% of Keyway's CPU on them on Horizon's load (BENCHMARKS.md,
/// "Horizon's load"), mimalloc's thread-local free lists less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keyway: a cache and session proxy for memcached and redis clients.
///
/// With no arguments it runs the embedded default: memcached protocol on
/// 127.0.0.1:11211, RESP (redis protocol) on 127.0.0.1:6379, /metrics and
/// health checks on 127.0.0.1:9121; Django sessions in a SQLite file in the
/// data directory (./keyway-data), kept across restarts; every other key in
/// a 256 MiB in-memory store; each listener has keys of its own.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Configuration file (TOML); without it the embedded default runs.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen for memcached text clients here (overrides listen.memcache).
    #[arg(long, value_name = "ADDR")]
    memcache_listen: Option<String>,
    /// Listen for RESP clients here (overrides listen.resp).
    #[arg(long, value_name = "ADDR")]
    resp_listen: Option<String>,
    /// Serve /metrics, /healthz, /readyz and /config over HTTP here
    /// (overrides listen.admin).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Also listen for memcached text clients on this Unix socket
    /// (overrides listen.memcache_socket; its mode is listen.socket_mode).
    #[arg(long, value_name = "PATH")]
    memcache_socket: Option<PathBuf>,
    /// Also listen for RESP clients on this Unix socket (overrides listen.resp_socket).
    #[arg(long, value_name = "PATH")]
    resp_socket: Option<PathBuf>,
    /// Directory for relative sqlite:// paths, such as the default session
    /// store (overrides runtime.data_dir; default ./keyway-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file and exit (non-zero, naming the field, if invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the embedded default configuration.
    PrintDefaultConfig,
    /// Create the table of every SQL backend in the configuration (the
    /// embedded default without --config) where missing, then exit.
    MigrateSchema,
    /// Copy every live key, with flags and remaining TTL, from a migrate
    /// policy's old store to its new one (or --from/--to any two backends or
    /// policies), while Keyway keeps serving. Safe to run again; resumes.
    Migrate {
        /// A `kind = "migrate"` policy: copy from its `from` to its `to`.
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present_all = ["from", "to"])]
        policy: Option<String>,
        /// The backend or policy to copy from.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// The backend or policy to copy to.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Where progress is saved (default: <data dir>/migrate-<from>-<to>.state).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Encrypt every row of a SQL backend under the first key of its
    /// encryption_key_file (rows under older keys, and rows written before
    /// encryption was on), in batches, while Keyway keeps serving. Safe to
    /// stop and run again.
    Rekey {
        /// The SQL backend (`[backends.NAME]`).
        #[arg(long)]
        backend: String,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Who is signed in, and ending it: asks the running Keyway (its
    /// listen.admin and listen.admin_token_file, from --config or the
    /// embedded default).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
    /// Sessions by user (JSON), or one user's sessions with --user.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// End every session of a user, in every store, on every host.
    Revoke {
        #[arg(long)]
        user: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn load(path: &PathBuf) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => {
            return match load(file) {
                Ok(config) => {
                    for warning in topology_warnings(&config) {
                        println!("warning: {warning}");
                    }
                    for note in config.access_notes() {
                        println!("note: {note}");
                    }
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("{message}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::PrintDefaultConfig) => {
            print!("{}", keyway::config::EMBEDDED_DEFAULT);
            return ExitCode::SUCCESS;
        }
        Some(Command::Sessions { action }) => return sessions(&cli, action),
        Some(Command::MigrateSchema | Command::Migrate { .. } | Command::Rekey { .. }) | None => {}
    }
    init_logging(cli.log_format);
    let config = match configure(&cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Some(Command::MigrateSchema) => runtime.block_on(migrate_schema(config)),
        Some(Command::Migrate {
            policy,
            from,
            to,
            state,
        }) => runtime.block_on(bulk_copy(config, policy, from.zip(to), state)),
        Some(Command::Rekey { backend, batch }) => runtime.block_on(rekey(config, &backend, batch)),
        _ => runtime.block_on(run(config, &cli)),
    }
}

/// `keyway sessions ...`: one request to the running Keyway's admin listener.
fn sessions(cli: &Cli, action: &SessionsAction) -> ExitCode {
    let config = match configure(cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let encode = |user: &str| form_urlencoded::byte_serialize(user.as_bytes()).collect::<String>();
    let (method, path) = match action {
        SessionsAction::List { user: None } => (hyper::Method::GET, "/sessions".to_string()),
        SessionsAction::List { user: Some(user) } => (
            hyper::Method::GET,
            format!("/sessions?user={}", encode(user)),
        ),
        SessionsAction::Revoke { user } => (
            hyper::Method::POST,
            format!("/sessions/revoke?user={}", encode(user)),
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(keyway::admin::client::ask(&config, method, &path)) {
        Ok(body) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn rekey(config: Config, name: &str, batch: usize) -> ExitCode {
    let Some(backend) = config.backends.get(name) else {
        eprintln!("no backend named {name:?} in the configuration");
        return ExitCode::FAILURE;
    };
    let sql = match AnyBackend::build(backend, &config.runtime.data_dir) {
        Ok(AnyBackend::Sql(sql)) => sql,
        Ok(_) => {
            eprintln!("backends.{name} is not a SQL backend; only SQL backends encrypt at rest");
            return ExitCode::FAILURE;
        }
        Err(error) => {
            eprintln!("backends.{name}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {eta}")
            .expect("a valid template"),
    );
    let started = std::time::Instant::now();
    match sql.rekey(batch, &progress).await {
        Ok(report) => {
            println!(
                "backends.{name}: read {}, sealed again {}, already under the sealing key {}, \
                 written by a client meanwhile {}, unreadable {} ({:.1} s)",
                report.rows,
                report.resealed,
                report.current,
                report.written_meanwhile,
                report.unreadable,
                started.elapsed().as_secs_f64()
            );
            if report.unreadable > 0 {
                eprintln!(
                    "{} rows open with no key in the file (logged above): add their keys back and run again",
                    report.unreadable
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("backends.{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration file (or the embedded default) with the command
/// line's overrides, validated. Run at start and on every SIGHUP.
fn configure(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => load(path)?,
        None => Config::embedded_default(),
    };
    if let Some(addr) = &cli.memcache_listen {
        config.listen.memcache = Some(addr.clone());
    }
    if let Some(addr) = &cli.resp_listen {
        config.listen.resp = Some(addr.clone());
    }
    if let Some(addr) = &cli.admin_listen {
        config.listen.admin = Some(addr.clone());
    }
    if let Some(path) = &cli.memcache_socket {
        config.listen.memcache_socket = Some(path.clone());
    }
    if let Some(path) = &cli.resp_socket {
        config.listen.resp_socket = Some(path.clone());
    }
    if let Some(dir) = &cli.data_dir {
        config.runtime.data_dir = dir.clone();
    }
    config.validate().map_err(|error| error.to_string())?;
    Ok(config)
}

async fn migrate_schema(config: Config) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for (name, backend) in &config.backends {
        if !backend.is_durable() {
            continue;
        }
        let built = match AnyBackend::build(backend, &config.runtime.data_dir) {
            Ok(AnyBackend::Sql(sql)) => sql,
            Ok(_) => unreachable!("durable backends are SQL"),
            Err(error) => {
                eprintln!("backends.{name}: {error}");
                status = ExitCode::FAILURE;
                continue;
            }
        };
        match built.create_schema().await {
            Ok(()) => println!(
                "backends.{name}: table {} ready ({})",
                backend.table,
                built.dialect().name()
            ),
            Err(error) => {
                eprintln!("backends.{name}: {error}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// What `keyway migrate` copies from and to: a migrate policy's `from` and
/// `to`, or `--from` and `--to`.
fn copy_ends(
    config: &Config,
    policy: Option<String>,
    from_to: Option<(String, String)>,
) -> Result<(String, String), String> {
    use keyway::config::PolicyConfig;
    match (policy, from_to) {
        (Some(name), _) => match config.policies.get(&name) {
            Some(PolicyConfig::Migrate { from, to, .. }) => Ok((from.clone(), to.clone())),
            Some(_) => Err(format!(
                "policies.{name} is not a migrate policy; use --from and --to"
            )),
            None => Err(format!("no policy named {name:?} in the configuration")),
        },
        (None, Some(pair)) => Ok(pair),
        (None, None) => unreachable!("clap requires --policy or --from/--to"),
    }
}

async fn bulk_copy(
    config: Config,
    policy: Option<String>,
    from_to: Option<(String, String)>,
    state: Option<PathBuf>,
) -> ExitCode {
    use keyway::policy::bulk_copy::BulkCopy;
    let (from, to) = match copy_ends(&config, policy, from_to) {
        Ok(ends) => ends,
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::FAILURE;
        }
    };
    let router = match keyway::router::Router::build(&config) {
        Ok(router) => router,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let (Some(source), Some(target)) = (router.target(&from), router.target(&to)) else {
        eprintln!("--from and --to must name backends or policies of the configuration");
        return ExitCode::FAILURE;
    };
    let state = match BulkCopy::state_file(&config.runtime.data_dir, state, &from, &to) {
        Ok(state) => state,
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let copy = BulkCopy {
        from: source,
        to: target,
        state,
        progress: BulkCopy::progress_bar(),
    };
    match copy.run().await {
        Ok(report) => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{from} -> {to}: listed {}, copied {}, already there {}, deleted since listed {}, \
                 expired {}, copies undone after a concurrent delete {} ({seconds:.1} s)",
                report.listed,
                report.copied,
                report.present,
                report.gone,
                report.expired,
                report.undone,
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{from} -> {to}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What to know before running `config` on several hosts.
fn topology_warnings(config: &Config) -> Vec<String> {
    config.topology_warnings(keyway::router::session_route(config))
}

async fn run(config: Config, cli: &Cli) -> ExitCode {
    for warning in topology_warnings(&config) {
        tracing::warn!("{warning}");
    }
    let count = match config.runtime.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let workers = match Workers::spawn(count) {
        Ok(workers) => workers,
        Err(error) => {
            tracing::error!(%error, "cannot start worker threads");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start_on(&config, workers).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => reload(&server, cli).await,
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGHUP: read and validate the configuration again; swap it in if valid.
async fn reload(server: &Server, cli: &Cli) {
    if cli.config.is_none() {
        tracing::warn!("SIGHUP: running the embedded default (no --config); nothing to reload");
        return;
    }
    tracing::info!("SIGHUP: reloading the configuration");
    match configure(cli) {
        Ok(config) => {
            // Errors are logged and counted by reload itself.
            let _ = server.reload(config).await;
        }
        Err(message) => server.reload_refused(&message),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
