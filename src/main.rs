//! The `keyway` binary: command line, logging, configuration, and running the
//! server until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keyway::backend::AnyBackend;
use keyway::config::Config;
use keyway::server::{Server, Workers};

/// Keyway: a cache and session proxy for memcached and redis clients.
///
/// With no arguments it runs the embedded default: memcached protocol on
/// 127.0.0.1:11211, RESP (redis protocol) on 127.0.0.1:6379, every key in one
/// in-memory store of 256 MiB.
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
                Ok(_) => {
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
        Some(Command::MigrateSchema) | None => {}
    }
    init_logging(cli.log_format);
    let mut config = match &cli.config {
        Some(path) => match load(path) {
            Ok(config) => config,
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded_default(),
    };
    if let Some(addr) = cli.memcache_listen {
        config.listen.memcache = Some(addr);
    }
    if let Some(addr) = cli.resp_listen {
        config.listen.resp = Some(addr);
    }
    if let Some(dir) = cli.data_dir {
        config.runtime.data_dir = dir;
    }
    if let Err(error) = config.validate() {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Some(Command::MigrateSchema) => runtime.block_on(migrate_schema(config)),
        _ => runtime.block_on(run(config)),
    }
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

async fn run(config: Config) -> ExitCode {
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
    wait_for_signal().await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
