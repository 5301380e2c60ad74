//! Progress display adapters: bars on stderr when it is a terminal, nothing otherwise (cron, CI,
//! pipes). The engine reports progress through these and never checks for a TTY itself.

use crate::fetch::{FetchObserver, NoProgress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

fn on_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar for `total` items of a batch phase ("importing", "deleting"); hidden off a TTY.
pub fn batch_bar(phase: &'static str, total: u64) -> ProgressBar {
    if !on_tty() || total == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(phase);
    bar
}

/// Download progress for feeds: a spinner with bytes per feed on a TTY, nothing otherwise.
pub fn fetch_observer() -> Box<dyn FetchObserver> {
    if on_tty() { Box::new(DownloadBars::default()) } else { Box::new(NoProgress) }
}

/// Shows one bar per feed being downloaded.
#[derive(Debug, Default)]
struct DownloadBars {
    bars: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl FetchObserver for DownloadBars {
    fn progress(&self, feed: &str, done: u64, total: Option<u64>) {
        let mut bars = self.bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar = bars.entry(feed.to_owned()).or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{msg:>16} [{bar:30}] {bytes}/{total_bytes}"
            } else {
                "{msg:>16} {spinner} {bytes}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(feed.to_owned());
            bar
        });
        bar.set_position(done);
    }

    fn finished(&self, feed: &str) {
        let mut bars = self.bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = bars.remove(feed) {
            bar.finish_and_clear();
        }
    }
}
