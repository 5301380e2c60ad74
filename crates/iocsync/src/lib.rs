//! iocsync application library: CLI, config, feed fetching, state store, engine, output.
//!
//! The binary (`main.rs`) only parses the command line and calls [`run`]; everything else lives
//! here so integration tests and the daemon share one code path.

pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod daemon;
pub mod engine;
pub mod feeds;
pub mod fetch;
pub mod logging;
pub mod output;
pub mod progress;
pub mod state;

use cli::{Cli, Command, OutputFormat};

/// Process exit codes of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Error: config, auth, API.
    Error = 1,
    /// Changes pending (`plan --detailed-exitcode`).
    Pending = 2,
    /// Partial: some items failed, or a feed fell back to its last good copy.
    Partial = 3,
    /// Refused by the delete brake.
    Brake = 4,
}

/// The user agent of every HTTP request iocsync makes.
pub const USER_AGENT: &str = concat!("iocsync/", env!("CARGO_PKG_VERSION"));

/// Runs one command line to completion and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let format = cli.global.output;
    if let Err(e) = logging::init(&cli.global) {
        output::error(format, &e);
        return Exit::Error as u8;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            output::error(format, &anyhow::anyhow!("cannot start the async runtime: {e}"));
            return Exit::Error as u8;
        }
    };
    let exit = runtime.block_on(dispatch(cli));
    // Do not wait for stray background tasks (a slow feed download after ctrl-c).
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    exit as u8
}

async fn dispatch(cli: Cli) -> Exit {
    let format = cli.global.output;
    match execute(cli).await {
        Ok(exit) => exit,
        Err(e) => {
            output::error(format, &e);
            Exit::Error
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<Exit> {
    let g = &cli.global;
    let format: OutputFormat = g.output;
    match &cli.command {
        Command::Parse(args) => {
            let report = commands::parse::run(args).await?;
            output::parse(format, &report);
            Ok(Exit::Ok)
        }
        Command::Init(args) => {
            let path = commands::init::run(&g.config, args.force)?;
            output::init(format, &path);
            Ok(Exit::Ok)
        }
        Command::Emulator(args) => commands::emulator::run(args, format).await.map(|()| Exit::Ok),
        Command::Sync(args) => {
            let config = config::Config::load(&g.config)?;
            let _lock = if args.dry_run { None } else { Some(daemon::RunLock::acquire(&config.sync.state)?) };
            let req = engine::SyncRequest { dry_run: args.dry_run, force: args.force, ..Default::default() };
            req.stop.on_signal();
            let outcomes = engine::sync_all(&config, args.tenant.tenant.as_deref(), &req).await?;
            output::sync(format, &outcomes);
            Ok(engine::exit_of(&outcomes, false))
        }
        Command::Plan(args) => {
            let config = config::Config::load(&g.config)?;
            let req = engine::SyncRequest { dry_run: true, ..Default::default() };
            let outcomes = engine::sync_all(&config, args.tenant.tenant.as_deref(), &req).await?;
            output::sync(format, &outcomes);
            Ok(engine::exit_of(&outcomes, args.detailed_exitcode))
        }
        Command::Check(args) => {
            let config = config::Config::load(&g.config)?;
            let report = commands::check::run(&config, args.tenant.as_deref()).await?;
            output::check(format, &report);
            Ok(if report.iter().all(|t| t.error.is_none()) { Exit::Ok } else { Exit::Error })
        }
        Command::List(args) => {
            let config = config::Config::load(&g.config)?;
            let report = commands::list::run(&config, args).await?;
            output::list(format, &report);
            Ok(Exit::Ok)
        }
        Command::Purge(args) => {
            let config = config::Config::load(&g.config)?;
            let report = commands::purge::run(&config, args).await?;
            output::purge(format, &report);
            Ok(if report.failed > 0 { Exit::Partial } else { Exit::Ok })
        }
        Command::Adopt(args) => {
            let config = config::Config::load(&g.config)?;
            let report = commands::adopt::run(&config, args).await?;
            output::adopt(format, &report);
            Ok(if report.failed > 0 { Exit::Partial } else { Exit::Ok })
        }
        Command::History(args) => {
            let config = config::Config::load(&g.config)?;
            let runs = commands::history::run(&config, args)?;
            output::history(format, &runs);
            Ok(Exit::Ok)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "iocsync", &mut buf);
            output::raw(&buf);
            Ok(Exit::Ok)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            output::raw(&buf);
            Ok(Exit::Ok)
        }
        Command::Daemon => {
            let config = config::Config::load(&g.config)?;
            daemon::run(config).await?;
            Ok(Exit::Ok)
        }
    }
}
