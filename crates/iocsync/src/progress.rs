//! Progress display adapters: bars on stderr when it is a terminal, nothing otherwise (cron, CI,
//! pipes). The engine reports progress through these and never checks for a TTY itself.

use crate::fetch::{FetchObserver, NoProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::OnceLock;

/// Every bar of the process, drawn together on stderr.
pub fn shared_bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Writes `buf` (one whole log line) to `out` with the bars lifted and redrawn after it, so
/// that a log line never lands inside a bar.
pub fn below_bars(out: &mut dyn std::io::Write, buf: &[u8]) -> std::io::Result<()> {
    lift(shared_bars(), out, buf)
}

fn lift(bars: &MultiProgress, out: &mut dyn std::io::Write, buf: &[u8]) -> std::io::Result<()> {
    bars.suspend(|| {
        out.write_all(buf)?;
        out.flush()
    })
}

fn on_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar for `total` items of a batch phase ("importing", "deleting"); hidden off a TTY.
pub fn batch_bar(phase: &'static str, total: u64) -> ProgressBar {
    if !on_tty() || total == 0 {
        return ProgressBar::hidden();
    }
    let bar = shared_bars().add(ProgressBar::new(total));
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
            let bar = shared_bars().add(ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that records what is drawn on it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("up {n}"));
            Ok(())
        }
        fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("line {s}"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("str {s}"));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push("clear".into());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl std::io::Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.push(format!("log {}", String::from_utf8_lossy(buf).trim_end()));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_is_written_with_the_bars_cleared_and_redrawn_after_it() {
        let mut screen = Screen::default();
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let bar = bars.add(ProgressBar::new(10));
        bar.set_style(ProgressStyle::with_template("BAR {pos}/{len}").unwrap());
        bar.set_position(3);
        bar.tick();
        screen.0.lock().unwrap().clear();
        lift(&bars, &mut screen, b"2026-01-01T00:00:00Z  INFO a log line\n").unwrap();
        let ops = screen.0.lock().unwrap().clone();
        let log = ops.iter().position(|o| o.starts_with("log ")).expect("the line was written");
        assert!(ops[..log].iter().any(|o| o == "clear"), "the bar was not cleared first: {ops:?}");
        assert!(ops[log + 1..].iter().any(|o| o.contains("BAR 3/10")), "the bar was not redrawn: {ops:?}");
        assert!(ops[..log].iter().all(|o| !o.contains("BAR")), "the bar was drawn over: {ops:?}");
    }
}
