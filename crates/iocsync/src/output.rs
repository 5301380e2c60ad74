//! The one place that prints results. Text for people, or exactly one JSON document on stdout
//! for machines; logs go to stderr through `tracing`, never here.
#![allow(clippy::print_stdout)]

use crate::cli::OutputFormat;
use crate::commands::adopt::AdoptReport;
use crate::commands::check::TenantCheck;
use crate::commands::history::HistoryEntry;
use crate::commands::list::ListReport;
use crate::commands::parse::ParseReport;
use crate::commands::purge::PurgeReport;
use crate::engine::TenantOutcome;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`iocsync ... | head`) is not an error worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => emit(&(s + "\n")),
        Err(e) => emit(&format!("{{\"error\": \"cannot render JSON: {e}\"}}\n")),
    }
}

/// Prints an error: as `{"error": ...}` on stdout in JSON mode (so stdout always holds one JSON
/// document), as `error: ...` on stderr otherwise.
pub fn error(format: OutputFormat, e: &anyhow::Error) {
    let message = format!("{e:#}");
    match format {
        OutputFormat::Json => json(&serde_json::json!({ "error": message })),
        OutputFormat::Text => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {message}");
        }
    }
}

/// `iocsync parse`.
pub fn parse(format: OutputFormat, r: &ParseReport) {
    if format == OutputFormat::Json {
        return json(r);
    }
    let mut s = String::new();
    let accepted: u64 = r.accepted.values().sum();
    let rejected: u64 = r.rejected.values().sum();
    let _ = writeln!(s, "{} ({}): {} lines", r.source, format_name(r.format), r.lines);
    let _ = writeln!(s, "accepted: {accepted}");
    for (t, n) in &r.accepted {
        let _ = writeln!(s, "  {t:<24}{n:>8}");
    }
    let _ = writeln!(s, "rejected: {rejected}");
    for (reason, n) in &r.rejected {
        let _ = writeln!(s, "  {reason:<24}{n:>8}");
        if let Some(list) = r.examples.iter().find(|(k, _)| k.code() == reason).map(|(_, v)| v) {
            for ex in list {
                let detail = ex.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
                let _ = writeln!(s, "      line {:>6}: {}{detail}", ex.line, shorten(&ex.value, 80));
            }
        }
    }
    let _ = writeln!(s, "duplicates: {}", r.duplicates);
    if r.show > 0 && !r.indicators.is_empty() {
        let _ = writeln!(s, "first {} accepted:", r.show.min(r.indicators.len()));
        for i in r.indicators.iter().take(r.show) {
            let _ = writeln!(s, "  line {:>6}  {:<22} {}", i.line, i.kind, shorten(&i.value, 100));
        }
    }
    emit(&s);
}

/// The report name of a feed status (`ok`, `last-good`, ...).
pub fn status_name(s: &iocsync_core::report::FeedStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn format_name(f: iocsync_ioc::Format) -> String {
    serde_json::to_value(f).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// `iocsync sync` and `iocsync plan`: one report per tenant.
pub fn sync(format: OutputFormat, outcomes: &[TenantOutcome]) {
    if format == OutputFormat::Json {
        return match outcomes {
            [one] => json(&with_error(one)),
            many => json(&serde_json::json!({ "tenants": many.iter().map(with_error).collect::<Vec<_>>() })),
        };
    }
    let mut s = String::new();
    for o in outcomes {
        sync_text(&mut s, o);
    }
    emit(&s);
}

fn with_error(o: &TenantOutcome) -> serde_json::Value {
    let mut v = serde_json::to_value(&o.report).unwrap_or(serde_json::Value::Null);
    if let (Some(e), Some(map)) = (&o.error, v.as_object_mut()) {
        map.insert("error".to_owned(), serde_json::Value::String(e.clone()));
    }
    v
}

fn sync_text(s: &mut String, o: &TenantOutcome) {
    let r = &o.report;
    let mode = if r.dry_run { " (dry run: nothing written)" } else { "" };
    let _ = writeln!(s, "tenant {}{mode}", r.tenant);
    if let Some(e) = &o.error {
        let _ = writeln!(s, "  error: {e}");
    }
    if !r.feeds.is_empty() {
        let _ = writeln!(s, "  feeds:");
        for f in &r.feeds {
            let _ = writeln!(
                s,
                "    {:<24} {:<13} {:>7} accepted {:>7} rejected",
                f.name,
                status_name(&f.status),
                f.accepted,
                f.rejected
            );
        }
    }
    let c = &r.counts;
    let verb = if r.dry_run { "would" } else { "did" };
    let _ = writeln!(
        s,
        "  plan ({verb}): {} create, {} update, {} renew, {} replace, {} delete, {} unchanged",
        c.create, c.update, c.renew, c.replace, c.delete, c.unchanged
    );
    let cap = &r.capacity;
    let _ = writeln!(
        s,
        "  capacity: limit {}, foreign {}, owned {} -> {}",
        cap.limit, cap.foreign, cap.owned_before, cap.owned_after
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(s, "  skipped:");
        for (reason, n) in &r.skipped {
            let _ = writeln!(s, "    {reason:<22}{n:>8}");
            if let Some((_, list)) = r.skipped_examples.iter().find(|(k, _)| k.code() == reason) {
                for ex in list {
                    let feed = ex.feed.as_deref().map(|f| format!(" [{f}]")).unwrap_or_default();
                    let detail = ex.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
                    let _ = writeln!(s, "        e.g. {}{feed}{detail}", shorten(&ex.value, 70));
                }
            }
        }
    }
    let a = &r.api_calls;
    let _ = writeln!(
        s,
        "  api calls: token {}, list {}, import {}, batch delete {}; throttled {}",
        a.token, a.list, a.import, a.batch_delete, r.throttled
    );
    if !r.failed.is_empty() {
        let _ = writeln!(s, "  failed: {}", r.failed.len());
        for f in r.failed.iter().take(10) {
            let _ = writeln!(s, "    {} {}: {}", f.kind, shorten(&f.value, 60), f.reason);
        }
    }
    if let Some(b) = &r.brake {
        let _ = writeln!(s, "  brake: {b}");
    }
    if o.error.is_none() && r.brake.is_none() && !o.has_changes() {
        let _ = writeln!(s, "  nothing to change");
    }
}

/// `iocsync check`.
pub fn check(format: OutputFormat, tenants: &[TenantCheck]) {
    if format == OutputFormat::Json {
        return match tenants {
            [one] => json(one),
            many => json(&serde_json::json!({ "tenants": many })),
        };
    }
    let mut s = String::new();
    for t in tenants {
        let _ = writeln!(s, "tenant {}: {}", t.tenant, if t.error.is_none() { "ok" } else { "FAILED" });
        for step in &t.steps {
            let _ = writeln!(s, "  {:<8} {}", if step.ok { "ok" } else { "failed" }, step.what);
        }
        if let Some(c) = &t.capacity {
            let _ = writeln!(
                s,
                "  capacity: limit {}, foreign {}, owned {}, headroom {}, free {}",
                c.limit, c.foreign, c.owned, c.headroom, c.free
            );
        }
        if let Some(e) = &t.error {
            let _ = writeln!(s, "  error: {e}");
        }
    }
    emit(&s);
}

/// `iocsync list`.
pub fn list(format: OutputFormat, r: &ListReport) {
    if format == OutputFormat::Json {
        return json(r);
    }
    let mut s = String::new();
    let _ = writeln!(s, "tenant {}: {} indicators shown ({} in tenant)", r.tenant, r.indicators.len(), r.total);
    for i in &r.indicators {
        let _ = writeln!(
            s,
            "  {:>8}  {:<22} {:<18} {:<9} {:<20} {}",
            i.id,
            i.kind,
            i.action,
            if i.owned { "owned" } else { "foreign" },
            i.expiration.as_deref().unwrap_or("never"),
            shorten(&i.value, 80)
        );
    }
    emit(&s);
}

/// `iocsync purge`.
pub fn purge(format: OutputFormat, r: &PurgeReport) {
    if format == OutputFormat::Json {
        return json(r);
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let mut s = format!("tenant {}: {verb} {} owned indicators", r.tenant, r.deleted);
    if r.failed > 0 {
        let _ = write!(s, "; {} failed", r.failed);
    }
    if r.dry_run && r.deleted > 0 {
        s.push_str(" (run again with --yes to delete them)");
    }
    s.push('\n');
    emit(&s);
}

/// `iocsync adopt`.
pub fn adopt(format: OutputFormat, r: &AdoptReport) {
    if format == OutputFormat::Json {
        return json(r);
    }
    let verb = if r.dry_run { "would adopt" } else { "adopted" };
    let mut s = format!("tenant {}: {verb} {} indicators created by {}", r.tenant, r.adopted, r.created_by);
    if r.failed > 0 {
        let _ = write!(s, "; {} failed", r.failed);
    }
    if r.dry_run && r.adopted > 0 {
        s.push_str(" (run again with --yes to take them over)");
    }
    s.push('\n');
    emit(&s);
}

/// `iocsync history`.
pub fn history(format: OutputFormat, runs: &[HistoryEntry]) {
    if format == OutputFormat::Json {
        return json(&serde_json::json!({ "runs": runs }));
    }
    let mut s = String::new();
    if runs.is_empty() {
        s.push_str("no runs recorded yet\n");
    }
    for r in runs {
        let _ = writeln!(
            s,
            "#{:<5} {} {:<12} {:<8} exit {}  {}",
            r.id,
            r.started_at,
            r.tenant,
            r.status,
            r.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            r.summary
        );
    }
    emit(&s);
}

/// `iocsync init`.
pub fn init(format: OutputFormat, path: &Path) {
    if format == OutputFormat::Json {
        return json(&serde_json::json!({ "written": path }));
    }
    emit(&format!(
        "wrote {}: set tenant_id and client_id, export IOCSYNC_CLIENT_SECRET, then run `iocsync check`\n",
        path.display()
    ));
}

/// `iocsync emulator`: the URLs and credentials it accepts.
pub fn emulator_started(format: OutputFormat, info: &serde_json::Value) {
    if format == OutputFormat::Json {
        return json(info);
    }
    let mut s = String::new();
    let _ = writeln!(s, "Defender emulator listening on {}", info["base_url"].as_str().unwrap_or_default());
    let _ = writeln!(s, "  authority = \"{}\"", info["base_url"].as_str().unwrap_or_default());
    let _ = writeln!(s, "  api_base  = \"{}\"", info["base_url"].as_str().unwrap_or_default());
    let _ = writeln!(s, "  tenant_id = \"{}\"", info["tenant_id"].as_str().unwrap_or_default());
    if let Some(clients) = info["clients"].as_array() {
        for c in clients {
            let _ = writeln!(
                s,
                "  client: {} secret {} role {}",
                c["client_id"].as_str().unwrap_or_default(),
                c["secret"].as_str().unwrap_or_default(),
                c["role"].as_str().unwrap_or_default()
            );
        }
    }
    s.push_str("press ctrl-c to stop\n");
    emit(&s);
}
