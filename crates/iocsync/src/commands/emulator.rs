//! `iocsync emulator`: serve the local Defender emulator until ctrl-c / SIGTERM.

use crate::cli::{EmulatorArgs, OutputFormat};
use anyhow::Context;
use iocsync_emulator::{ClientCredential, EmulatorConfig, RateLimits, Role};

/// Starts the emulator, prints its URLs and accepted credentials, and serves until interrupted.
pub async fn run(args: &EmulatorArgs, format: OutputFormat) -> anyhow::Result<()> {
    let behaviour = crate::connect::emulator_profile()?;
    let mut config = EmulatorConfig { listen: args.listen, behaviour, ..EmulatorConfig::default() };
    if let Some(t) = &args.tenant {
        config.tenant_id = t.clone();
    }
    if !args.clients.is_empty() {
        config.clients = args
            .clients
            .iter()
            .map(|c| iocsync_emulator::parse_client_spec(c).map_err(|e| anyhow::anyhow!("--client {e}")))
            .collect::<anyhow::Result<Vec<ClientCredential>>>()?;
    }
    if args.page_size == 0 || args.page_size > 10_000 {
        anyhow::bail!("--page-size must be between 1 and 10000");
    }
    config.page_size = args.page_size;
    if !(args.time_scale.is_finite() && args.time_scale >= 1.0) {
        anyhow::bail!("--time-scale must be a number >= 1 (60: a rate-limit minute lasts one second)");
    }
    config.rate_limits = RateLimits::documented().scaled(args.time_scale);
    config.state_file = args.state.clone();
    if let Some(path) = &args.hunting_events {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --hunting-events {}", path.display()))?;
        config.hunting.events = iocsync_emulator::parse_events_jsonl(&text, chrono::Utc::now())
            .map_err(|e| anyhow::anyhow!("--hunting-events {}: {e}", path.display()))?;
    }
    let clients: Vec<serde_json::Value> = config
        .clients
        .iter()
        .map(|c| {
            serde_json::json!({
                "client_id": c.client_id,
                "secret": c.secret,
                "role": match c.role { Role::ReadWrite => "Ti.ReadWrite", Role::ReadWriteAll => "Ti.ReadWrite.All", Role::None => "none" },
            })
        })
        .collect();
    let config_events = config.hunting.events.len();
    let emu = iocsync_emulator::start(config).await.context("starting the emulator")?;
    let info = serde_json::json!({
        "base_url": emu.base_url(),
        "tenant_id": emu.tenant_id(),
        "clients": clients,
        "state": args.state,
        "hunting_events": config_events,
    });
    crate::output::emulator_started(format, &info);
    crate::daemon::shutdown_signal().await;
    tracing::info!("stopping the emulator");
    emu.shutdown().await;
    Ok(())
}
