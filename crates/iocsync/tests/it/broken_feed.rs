//! A broken feed never deletes: a 500, an HTML page or an empty body leaves the tenant alone.

use crate::harness::{Env, EnvOptions, public_ips, text_feed};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
enum Serve {
    Feed(String),
    Status500,
    Html,
    Empty,
}

async fn handler(State(mode): State<Arc<Mutex<Serve>>>) -> axum::response::Response {
    let mode = mode.lock().unwrap().clone();
    match mode {
        Serve::Feed(body) => ([(header::CONTENT_TYPE, "text/plain")], body).into_response(),
        Serve::Status500 => (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke").into_response(),
        Serve::Html => (
            [(header::CONTENT_TYPE, "text/html")],
            "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>We'll be back soon</body></html>",
        )
            .into_response(),
        Serve::Empty => ([(header::CONTENT_TYPE, "text/plain")], "").into_response(),
    }
}

async fn feed_server(mode: Arc<Mutex<Serve>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/feed.txt", get(handler)).with_state(mode);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/feed.txt")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_html_or_empty_feed_deletes_nothing() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(50, 9000);
    let mode = Arc::new(Mutex::new(Serve::Feed(text_feed(&ips))));
    let url = feed_server(mode.clone()).await;
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"remote\"\nsource = \"{url}\"\nformat = \"text\"\nmax_age = \"48h\"\n"
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.owned().len(), 50);

    for (broken, label) in [(Serve::Status500, "500"), (Serve::Html, "html"), (Serve::Empty, "empty")] {
        *mode.lock().unwrap() = broken;
        env.emu.clear_calls();
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 3, "{label}: a fallback is a partial run: {report}");
        assert_eq!(report["feeds"][0]["status"], "last-good", "{label}: {report}");
        assert_eq!(report["counts"]["delete"], 0, "{label}: {report}");
        assert_eq!(env.write_calls(), 0, "{label}: the last good copy is unchanged, nothing to write");
        assert_eq!(env.owned().len(), 50, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_that_never_worked_contributes_nothing_and_protects_nothing_it_never_had() {
    let env = Env::start(EnvOptions::default()).await;
    let mode = Arc::new(Mutex::new(Serve::Status500));
    let url = feed_server(mode.clone()).await;
    let ips = public_ips(10, 9500);
    env.write("local.txt", &text_feed(&ips));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"local\"\nsource = \"local.txt\"\nformat = \"text\"\n[[feeds]]\nname = \"remote\"\nsource = \"{url}\"\nformat = \"text\"\n"
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["feeds"][1]["status"], "failed", "{report}");
    assert_eq!(report["skipped"]["feed-failed"], 1, "{report}");
    // The text report says why, under the feed's line.
    let text = String::from_utf8_lossy(&env.run(&["plan"]).await.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.trim_start().starts_with("remote ")).expect("a line for the feed");
    assert!(lines[at + 1].contains("500"), "{text}");
    assert_eq!(env.owned().len(), 10, "the healthy feed still syncs");
}
