//! Shared helpers: start an emulator, point a client at it, build items, check windows.

use std::time::Duration;

use iocsync_defender::{
    Action, ClientConfig, Cloud, Credential, DefenderClient, ImportItem, PacingLimits, RetryPolicy,
};
use iocsync_emulator::{
    CallRecord, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig, EndpointFamily,
};
use secrecy::SecretString;

/// Owner tag used by every test.
pub const TAG: &str = "iocsync";

/// Retries with tiny delays so tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        max_elapsed: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

pub async fn emulator(config: EmulatorConfig) -> Emulator {
    iocsync_emulator::start(config).await.expect("emulator starts")
}

/// Client config for the emulator's default client, no client-side pacing, fast retries.
pub fn config_for(emu: &Emulator) -> ClientConfig {
    let mut c = ClientConfig::new(
        emu.tenant_id(),
        DEFAULT_CLIENT_ID,
        Credential::Secret(SecretString::from(DEFAULT_CLIENT_SECRET)),
        Cloud::Commercial,
    );
    c.api_base = Some(emu.base_url());
    c.authority = Some(emu.base_url());
    c.limits = PacingLimits::unlimited();
    c.retry = fast_retry();
    c.request_timeout = Duration::from_secs(30);
    c
}

pub fn client_for(emu: &Emulator) -> DefenderClient {
    DefenderClient::new(config_for(emu)).expect("client builds")
}

/// A valid FileSha256 Block item, distinct per `n`.
pub fn sha_item(n: usize) -> ImportItem {
    ImportItem {
        indicator_value: format!("{n:064x}"),
        indicator_type: "FileSha256".into(),
        action: Action::Block,
        title: format!("test {n}"),
        description: "integration test".into(),
        external_id: Some(format!("iocsync:{TAG}")),
        severity: Some("High".into()),
        generate_alert: Some(true),
        ..ImportItem::default()
    }
}

pub fn domain_item(name: &str) -> ImportItem {
    ImportItem { indicator_value: name.into(), indicator_type: "DomainName".into(), ..sha_item(0) }
}

pub fn calls_of(emu: &Emulator, family: EndpointFamily) -> Vec<CallRecord> {
    emu.calls().into_iter().filter(|c| c.family == family).collect()
}

/// Largest number of accepted (non-429) calls of `family` inside any window of `length`.
pub fn max_accepted_in_window(emu: &Emulator, family: EndpointFamily, length: Duration) -> usize {
    let len = chrono::Duration::from_std(length).unwrap();
    let times: Vec<_> = calls_of(emu, family).into_iter().filter(|c| c.status != 429).map(|c| c.at).collect();
    times.iter().map(|&end| times.iter().filter(|&&t| t > end - len && t <= end).count()).max().unwrap_or(0)
}

/// Every value present exactly once in the emulator.
pub fn assert_each_once(emu: &Emulator, values: &[String]) {
    let all = emu.indicators();
    for v in values {
        let n = all.iter().filter(|i| i.indicator_value.eq_ignore_ascii_case(v)).count();
        assert_eq!(n, 1, "{v} present {n} times");
    }
}
