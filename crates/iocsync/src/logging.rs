//! Log setup: lines on stderr (never stdout, which carries results), plus an optional log file.
//!
//! - `--log-format text` (default): UTC timestamp, level, message and fields; colour only on a
//!   terminal and never with `NO_COLOR`; under systemd (`JOURNAL_STREAM` set) each stderr line
//!   starts with its syslog priority (`<3>` error ... `<7>` debug) and carries no timestamp,
//!   since journald adds its own.
//! - `--log-format json`: one JSON object a line with `timestamp`, `level`, `message`, the
//!   fields of the event and of its spans (`tenant`, `run_id` inside a run) and `target`.
//!
//! Lines on stderr are written with the progress bars lifted for the moment, so they never tear.

use crate::cli::{GlobalArgs, LogFormat};
use std::fmt;
use std::io;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::{DefaultFields, JsonFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the global subscriber. `RUST_LOG` overrides the level chosen by `-v`/`-q`.
pub fn init(global: &GlobalArgs) -> anyhow::Result<()> {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let directive = format!("{level},hyper=warn,reqwest=warn,rustls=warn,h2=warn,axum=warn,tower=warn");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&directive));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !journald && !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr());

    let file = match &global.log_file {
        Some(path) => Some(
            crate::fsutil::open_private_append(path)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let file = file.map(std::sync::Mutex::new);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match global.log_format {
        LogFormat::Json => {
            let stderr = tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .with_writer(StderrBelowBars);
            let file = file.map(|f| {
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines)
                    .with_writer(f)
            });
            registry.with(stderr.and_then(file)).try_init()
        }
        LogFormat::Text => {
            let stderr = tracing_subscriber::fmt::layer()
                .fmt_fields(DefaultFields::new())
                .event_format(TextLines { journald, ansi })
                .with_ansi(ansi)
                .with_writer(StderrBelowBars);
            let file = file.map(|f| {
                tracing_subscriber::fmt::layer()
                    .event_format(TextLines { journald: false, ansi: false })
                    .with_ansi(false)
                    .with_writer(f)
            });
            registry.with(stderr.and_then(file)).try_init()
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))
}

/// The syslog priority of a level, as journald reads it from a `<N>` line prefix.
pub fn journal_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    }
}

/// Text lines: `<N>` under journald, else a UTC timestamp; then the usual level, spans, message.
struct TextLines {
    journald: bool,
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let base = tracing_subscriber::fmt::format().with_target(false).with_ansi(self.ansi);
        if self.journald {
            write!(writer, "<{}>", journal_priority(*event.metadata().level()))?;
            base.without_time().format_event(ctx, writer, event)
        } else {
            base.with_timer(UtcMillis).format_event(ctx, writer, event)
        }
    }
}

/// RFC 3339 UTC timestamps with milliseconds (`2026-01-01T00:00:00.000Z`).
struct UtcMillis;

impl FormatTime for UtcMillis {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write!(w, "{}", chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

/// One JSON object a line; span fields (`tenant`, `run_id`) are lifted to the top level.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut map = serde_json::Map::new();
        let mut ts = String::new();
        UtcMillis.format_time(&mut Writer::new(&mut ts))?;
        map.insert("timestamp".into(), ts.into());
        map.insert("level".into(), event.metadata().level().as_str().to_ascii_lowercase().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&fields.fields)
                {
                    map.extend(o);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut map));
        map.entry("message").or_insert_with(|| "".into());
        map.insert("target".into(), event.metadata().target().into());
        writeln!(writer, "{}", serde_json::Value::Object(map))
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

/// Stderr for log lines, written with the progress bars lifted for the moment.
#[derive(Debug, Clone, Copy)]
pub struct StderrBelowBars;

impl<'a> MakeWriter<'a> for StderrBelowBars {
    type Writer = BelowBars;
    fn make_writer(&'a self) -> Self::Writer {
        BelowBars
    }
}

/// One log write: the formatted event goes out whole, between a clear and a redraw of the bars.
#[derive(Debug)]
pub struct BelowBars;

impl io::Write for BelowBars {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::progress::below_bars(&mut io::stderr().lock(), buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
