//! iocsync application library: CLI, config, feed fetching, state store, engine, output.
//!
//! The binary (`main.rs`) only parses the command line and calls [`run`]; everything else lives
//! here so integration tests and the daemon share one code path.

pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod console;
pub mod daemon;
pub mod engine;
pub mod feeds;
pub mod fetch;
pub mod fsutil;
pub mod logging;
pub mod output;
pub mod progress;
pub mod state;

use anyhow::Context as _;
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

impl Exit {
    /// How bad an outcome is, for combining several tenants: an error beats the brake, the
    /// brake beats a partial run, a partial run beats pending changes.
    pub fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Pending => 1,
            Exit::Partial => 2,
            Exit::Brake => 3,
            Exit::Error => 4,
        }
    }
}

/// Prints a command-line parse error (or the help/version text) and returns its exit code:
/// 0 for `--help`/`--version`, 1 for a usage error, as `{"error": ...}` when `--output json`
/// was asked for.
pub fn usage_error(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Exit::Ok as u8;
    }
    let json = std::env::args().collect::<Vec<_>>().windows(2).any(|w| w[0] == "--output" && w[1] == "json")
        || std::env::args().any(|a| a == "--output=json");
    if json {
        let text = e.to_string();
        let message = text.trim().trim_start_matches("error: ");
        output::error(OutputFormat::Json, &anyhow::anyhow!("{message}"));
    } else {
        let _ = e.print();
    }
    Exit::Error as u8
}

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
        Err(e) if e.is::<output::Reported>() => Exit::Error,
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
            let report = commands::parse::run(args, format == OutputFormat::Json).await?;
            if format == OutputFormat::Text {
                output::parse(&report);
            }
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
            let mut req =
                engine::SyncRequest { dry_run: args.dry_run, force: args.force, ..Default::default() };
            let mut tenant = args.tenant.tenant.clone();
            if let Some(path) = &args.plan {
                let saved = engine::saved::SavedPlan::load(path, args.max_plan_age, chrono::Utc::now())?;
                if tenant.as_deref().is_some_and(|t| t != saved.tenant) {
                    anyhow::bail!(
                        "the saved plan {} is for tenant {}, not {}",
                        path.display(),
                        saved.tenant,
                        tenant.unwrap_or_default()
                    );
                }
                tenant = Some(saved.tenant.clone());
                req.apply_plan = Some(std::sync::Arc::new(saved));
            }
            req.stop.on_signal();
            let outcomes = engine::sync_all(&config, tenant.as_deref(), &req).await?;
            output::sync(format, &outcomes);
            Ok(engine::exit_of(&outcomes, false))
        }
        Command::Plan(args) => {
            let config = config::Config::load(&g.config)?;
            let save = args.out.is_some() || format == OutputFormat::Markdown;
            if args.out.is_some() && args.tenant.tenant.is_none() && config.tenants.len() > 1 {
                anyhow::bail!("plan --out saves one tenant's plan: name it with --tenant");
            }
            let req = engine::SyncRequest { dry_run: true, save_plan: save, ..Default::default() };
            let outcomes = engine::sync_all(&config, args.tenant.tenant.as_deref(), &req).await?;
            if let Some(path) = &args.out {
                let Some(saved) = outcomes.iter().find_map(|o| o.saved.as_ref()) else {
                    let why = outcomes.iter().find_map(|o| o.error.clone()).unwrap_or_default();
                    anyhow::bail!("no plan to save: {why}");
                };
                std::fs::write(path, saved.to_json()?)
                    .with_context(|| format!("writing the saved plan {}", path.display()))?;
                tracing::info!(path = %path.display(), hash = %saved.content_hash, "saved the plan");
            }
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
            let _lock = if args.yes { Some(daemon::RunLock::acquire(&config.sync.state)?) } else { None };
            let report = commands::purge::run(&config, args).await?;
            output::purge(format, &report);
            Ok(if report.failed > 0 { Exit::Partial } else { Exit::Ok })
        }
        Command::Adopt(args) => {
            let config = config::Config::load(&g.config)?;
            let _lock = if args.yes { Some(daemon::RunLock::acquire(&config.sync.state)?) } else { None };
            let report = commands::adopt::run(&config, args).await?;
            output::adopt(format, &report);
            Ok(if report.failed > 0 { Exit::Partial } else { Exit::Ok })
        }
        Command::History(args) => {
            let config = config::Config::load(&g.config)?;
            if let Some(export) = args.export {
                commands::history::export(&config, args, export)?;
            } else if args.changes {
                let changes = commands::history::changes(&config, args)?;
                output::changes(format, &changes);
            } else {
                let runs = commands::history::run(&config, args)?;
                output::history(format, &runs);
            }
            Ok(Exit::Ok)
        }
        Command::Explain(args) => {
            let config = config::Config::load(&g.config)?;
            let report = commands::explain::run(&config, args).await?;
            output::explain(format, &report);
            Ok(Exit::Ok)
        }
        Command::Undo(args) => {
            let config = config::Config::load(&g.config)?;
            let _lock = if args.yes { Some(daemon::RunLock::acquire(&config.sync.state)?) } else { None };
            let (report, exit) = engine::undo::run(&config, args).await?;
            output::undo(format, &report);
            Ok(exit)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "iocsync", &mut buf);
            output::raw(&buf);
            Ok(Exit::Ok)
        }
        Command::Man(args) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match &args.dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
                    let pages = commands::man::write_pages(cmd, dir)?;
                    output::man_pages(format, dir, &pages);
                }
                None => {
                    let mut buf = Vec::new();
                    clap_mangen::Man::new(cmd).render(&mut buf)?;
                    output::raw(&buf);
                }
            }
            Ok(Exit::Ok)
        }
        Command::Healthcheck(args) => {
            let url = match &args.url {
                Some(u) => u.clone(),
                None => daemon::healthz_url(&config::Config::load(&g.config)?.daemon.listen),
            };
            let status = daemon::probe(&url).await?;
            output::healthcheck(format, &url, status);
            Ok(if status == 200 { Exit::Ok } else { Exit::Error })
        }
        Command::Console(cmd) => {
            let config = config::Config::load(&g.config)?;
            let done = commands::console::run(&config, cmd)?;
            output::console_users(format, &done);
            Ok(Exit::Ok)
        }
        Command::Daemon => {
            let config = config::Config::load(&g.config)?;
            daemon::run(config, format).await?;
            Ok(Exit::Ok)
        }
    }
}
