//! The `oidc-authz` binary: read the config (exit 64 listing every problem, before binding any
//! port), bind, serve until SIGINT/SIGTERM (SIGHUP reloads the config: `reload.rs`), then drain (`server::run`: NOT_SERVING for
//! `shutdown_drain_period` while still answering, then at most `shutdown_grace_period` for Checks
//! in flight). `--check-config` stops after validation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use oidc_authz::config::{self, Config};
use oidc_authz::reload::Reloader;
use oidc_authz::server::{self, App, GrpcListener};
use oidc_authz::telemetry;

/// EX_USAGE / EX_CONFIG style exit codes.
const EXIT_BAD_CONFIG: u8 = 64;
const EXIT_FAILURE: u8 = 1;

const USAGE: &str = "usage: oidc-authz [--config FILE] [--check-config]

  --config FILE    YAML configuration; every key can be overridden by OIDC_AUTHZ_<KEY>
                   (nested keys with __, e.g. OIDC_AUTHZ_REDIS__URL)
  --check-config   validate the configuration and exit (0 when valid)
  --version        print the version

Signals: SIGTERM/SIGINT drain and exit; SIGHUP re-reads the configuration (a bad one is refused
and logged, the one in force keeps serving)";

struct Args {
    config: Option<PathBuf>,
    check_only: bool,
}

/// A command line that is not `USAGE`'s.
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("--config needs a file")]
    ConfigWithoutFile,
    #[error("unknown argument `{0}`")]
    Unknown(String),
}

fn parse_args() -> Result<Args, ArgsError> {
    let mut args = Args {
        config: None,
        check_only: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--config" | "-c" => {
                args.config = Some(words.next().ok_or(ArgsError::ConfigWithoutFile)?.into());
            }
            "--check-config" => args.check_only = true,
            "--version" | "-V" => {
                println!("oidc-authz {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(ArgsError::Unknown(other.to_owned())),
        }
    }
    Ok(args)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}

/// Reloads the config on every SIGHUP of `hangups`, one at a time, until the process ends.
fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: Arc<Reloader>,
    path: Option<PathBuf>,
) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            // Logged and counted by the reloader; a refused reload leaves the config in force.
            let _ = reloader.reload(path.as_deref()).await;
        }
    });
}

/// Why the process stopped before or instead of serving to the end; each says its exit code.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}\n{USAGE}")]
    Usage(ArgsError),
    #[error("{0}")]
    Config(config::ConfigError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot handle SIGHUP: {0}")]
    Hangup(std::io::Error),
    #[error("cannot listen on {address}: {error}")]
    Listen {
        address: String,
        error: std::io::Error,
    },
    #[error("{0}")]
    Build(server::BuildError),
    #[error("{0}")]
    Serve(server::ServeError),
}

impl StartError {
    fn exit_code(&self) -> u8 {
        match self {
            StartError::Usage(_) | StartError::Config(_) | StartError::Build(_) => EXIT_BAD_CONFIG,
            StartError::Runtime(_)
            | StartError::Hangup(_)
            | StartError::Listen { .. }
            | StartError::Serve(_) => EXIT_FAILURE,
        }
    }
}

fn main() -> ExitCode {
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oidc-authz: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Reads the config (or only checks it), then serves until a shutdown signal.
fn start() -> Result<(), StartError> {
    let args = parse_args().map_err(StartError::Usage)?;
    let (config, warnings) = config::load(args.config.as_deref()).map_err(StartError::Config)?;
    for warning in &warnings {
        eprintln!("oidc-authz: warning: {warning}");
    }
    if args.check_only {
        println!("configuration is valid");
        return Ok(());
    }
    // Dropped when `start` returns: queued spans are exported then.
    let _telemetry = telemetry::init(config.log_format, &config.log_level, &config.otel);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    runtime.block_on(serve(config, args.config))
}

/// Binds both listeners, builds the app and serves it; SIGHUP reloads `config_path`.
async fn serve(config: Config, config_path: Option<PathBuf>) -> Result<(), StartError> {
    // Taken over before anything else, so that a SIGHUP never has its default effect (exit);
    // one that comes before the app is built is applied once it is.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(StartError::Hangup)?;
    let grpc = GrpcListener::bind(&config.listen).await;
    let admin = server::bind_reusable(config.admin_listen);
    let (grpc, admin) = match (grpc, admin) {
        (Ok(grpc), Ok(admin)) => (grpc, admin),
        (Err(error), _) => {
            return Err(StartError::Listen {
                address: config.listen.to_string(),
                error,
            });
        }
        (_, Err(error)) => {
            return Err(StartError::Listen {
                address: config.admin_listen.to_string(),
                error,
            });
        }
    };
    tracing::info!(grpc = %config.listen, admin = %config.admin_listen, issuer = %config.issuer, providers = ?config.provider_names(), "oidc-authz listening");
    let app = App::build(config).map_err(StartError::Build)?;
    reload_on_hangup(hangups, app.reloader(), config_path);
    server::run(grpc, admin, app, shutdown_signal())
        .await
        .map_err(StartError::Serve)
}
