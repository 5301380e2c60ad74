//! Sliding-window rate limits per (app, endpoint family); 429 + Retry-After; 429s do not count.

use iocsync_emulator::{DEFAULT_CLIENT_ID, RateLimits};
use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn import_30_per_minute_with_retry_after() {
    let env = env().await;
    env.emu.set_rate_limits(RateLimits::documented());
    for n in 0..30 {
        assert_eq!(env.import(vec![ip(n)]).await.status, 200, "call {n}");
    }
    let r = env.import(vec![ip(99)]).await;
    assert_eq!((r.status, r.code().as_str()), (429, "TooManyRequests"));
    assert_eq!(r.headers["retry-after"], "60");
    // The throttled call had no effect and did not extend the window.
    assert_eq!(env.emu.indicators().len(), 30);
    env.clock.advance(chrono::Duration::seconds(30));
    let r = env.import(vec![ip(99)]).await;
    assert_eq!(r.headers["retry-after"], "30");
    env.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(env.import(vec![ip(99)]).await.status, 200);
    // Other families and other apps have their own windows.
    assert_eq!(env.get("/api/indicators").await.status, 200);
    let own = token_for(&env.http, &env.emu, OWN_APP, OWN_SECRET).await;
    let r = env
        .call_as(&own, Method::POST, "/api/indicators/import", Some(&json!({"Indicators": [ip(500)]})))
        .await;
    assert_eq!(r.status, 200);
    let throttled: Vec<_> = env.emu.calls().into_iter().filter(|c| c.throttled).collect();
    assert_eq!(throttled.len(), 2);
    assert_eq!(throttled[0].client_id.as_deref(), Some(DEFAULT_CLIENT_ID));
}

#[tokio::test]
async fn hourly_window_and_time_scale() {
    let env = env().await;
    // Scaled by 60: a "minute" is 1 s and an "hour" is 60 s; Retry-After stays >= 1.
    env.emu.set_rate_limits(RateLimits::documented().scaled(60.0));
    let mut ok = 0;
    for _ in 0..16 {
        for _ in 0..100 {
            if env.get("/api/indicators").await.status == 200 {
                ok += 1;
            }
        }
        env.clock.advance(chrono::Duration::milliseconds(1100));
    }
    assert_eq!(ok, 1500, "the hourly window caps at 1,500");
    let r = env.get("/api/indicators").await;
    assert_eq!(r.status, 429);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}
