//! Behaviour the emulator does not produce, against a tiny canned HTTP server on 127.0.0.1:0:
//! `$filter` refused with ODataError, v1 string `expires_in`, 401 twice, foreign nextLink,
//! an over-long Retry-After, reordered import results.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iocsync_defender::{
    ClientConfig, Cloud, Credential, DefenderClient, ErrorKind, PacingLimits, RetryPolicy,
};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::common::{TAG, fast_retry, sha_item};

const CLIENT: &str = "aaaaaaaa-1111-4111-8111-111111111111";

/// Serves one canned response per connection, in order; records each raw request.
struct Canned {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn response(status: u16, extra_headers: &[(&str, &str)], body: &str) -> String {
    let mut r = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    if !body.is_empty() {
        r.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in extra_headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

fn token_v1() -> String {
    response(
        200,
        &[],
        r#"{"token_type":"Bearer","expires_in":"3599","access_token":"canned-access-token-value"}"#,
    )
}

async fn serve(responses: Vec<String>) -> Canned {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(VecDeque::from(responses)));
    let log = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then Content-Length bytes of body.
            let body_start = loop {
                let Ok(n) = sock.read(&mut chunk).await else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(p + 4);
                }
            };
            let Some(body_start) = body_start else { continue };
            let head = String::from_utf8_lossy(&buf[..body_start]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < body_start + len {
                let Ok(n) = sock.read(&mut chunk).await else { break };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            log.lock().unwrap().push(String::from_utf8_lossy(&buf).into_owned());
            let next = queue.lock().unwrap().pop_front().unwrap_or_else(|| response(500, &[], ""));
            let _ = sock.write_all(next.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    Canned { base, requests }
}

fn client(c: &Canned, retry: RetryPolicy) -> DefenderClient {
    let mut cfg = ClientConfig::new(
        "contoso.onmicrosoft.com",
        CLIENT,
        Credential::Secret(SecretString::from("canned-secret")),
        Cloud::Commercial,
    );
    cfg.api_base = Some(c.base.clone());
    cfg.authority = Some(c.base.clone());
    cfg.limits = PacingLimits::unlimited();
    cfg.retry = retry;
    DefenderClient::new(cfg).unwrap()
}

fn row(id: u32, created_by: &str, application: Option<&str>) -> serde_json::Value {
    serde_json::json!({"id": id.to_string(), "indicatorValue": format!("v{id}.example.org"),
        "indicatorType": "DomainName", "action": "Block", "createdBy": created_by, "application": application})
}

#[tokio::test]
async fn refused_filter_falls_back_to_client_side_filtering() {
    let rows = serde_json::json!({"value": [
        row(1, CLIENT, Some(TAG)),
        row(2, &CLIENT.to_uppercase(), Some(TAG)),
        row(3, CLIENT, Some("other-tool")),
        row(4, "analyst@contoso.example", None),
    ]});
    let c = serve(vec![
        token_v1(),
        response(
            400,
            &[],
            r#"{"error":{"code":"ODataError","message":"Query option 'Filter' is not allowed.","target":"t"}}"#,
        ),
        response(200, &[], &rows.to_string()),
    ])
    .await;
    let client = client(&c, fast_retry());
    let owned = client.list_owned(TAG).await.unwrap();
    assert_eq!(owned.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["1", "2"]);
    let reqs = c.requests.lock().unwrap().clone();
    assert!(reqs[0].starts_with("POST /contoso.onmicrosoft.com/oauth2/v2.0/token"), "{}", reqs[0]);
    assert!(reqs[0].contains("scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default"));
    assert!(reqs[0].to_lowercase().contains(&format!("user-agent: iocsync/{}", env!("CARGO_PKG_VERSION"))));
    assert!(reqs[1].starts_with("GET /api/indicators?$top=10000&$filter=createdBy+eq+%27"), "{}", reqs[1]);
    assert!(reqs[2].starts_with("GET /api/indicators?$top=10000 "), "{}", reqs[2]);
    assert!(
        reqs[1].contains("authorization: Bearer canned-access-token-value")
            || reqs[1].contains("Bearer canned")
    );
    assert_eq!(client.stats().token, 1, "v1 string expires_in parsed, token cached");
}

#[tokio::test]
async fn a_second_401_after_refresh_is_a_permanent_auth_error() {
    let c = serve(vec![
        token_v1(),
        response(401, &[], ""),
        token_v1(),
        response(401, &[("request-id", "rq-9")], ""),
    ])
    .await;
    let client = client(&c, fast_retry());
    let err = client.list_all().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.request_id(), Some("rq-9"));
    assert!(!err.is_retryable());
    assert_eq!((client.stats().token, client.stats().list), (2, 2));
    assert!(!format!("{err:?}").contains("canned-access-token-value"));
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let page = serde_json::json!({"value": [row(1, CLIENT, Some(TAG))],
        "@odata.nextLink": "http://collector.example.net/api/indicators?$skip=1"});
    let c = serve(vec![token_v1(), response(200, &[], &page.to_string())]).await;
    let err = client(&c, fast_retry()).list_all().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Api);
    assert!(err.to_string().contains("refusing to send the token"), "{err}");
    assert_eq!(c.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_gives_up_at_once() {
    let throttled =
        r#"{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded.","target":"t-429"}}"#;
    let c = serve(vec![token_v1(), response(429, &[("Retry-After", "3600")], throttled)]).await;
    let retry = RetryPolicy {
        max_elapsed: Duration::from_secs(30),
        max_retry_after: Duration::from_secs(300),
        ..fast_retry()
    };
    let client = client(&c, retry);
    let err = client.import(&[sha_item(1)]).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.code(), Some("TooManyRequests"));
    assert_eq!(err.request_id(), Some("t-429"));
    assert!(err.is_retryable());
    assert_eq!(client.stats().throttled, 1);
    assert_eq!(client.stats().import, 1);
}

#[tokio::test]
async fn reordered_import_results_are_matched_by_value() {
    let items = vec![sha_item(1), sha_item(2), sha_item(3)];
    let body = serde_json::json!({"value": [
        {"id": "12", "indicator": items[1].indicator_value.to_uppercase(), "isFailed": false, "failureReason": null},
        {"id": null, "indicator": items[2].indicator_value, "isFailed": true, "failureReason": "nope"},
        {"id": 11, "indicator": items[0].indicator_value, "isFailed": false},
    ]});
    let c = serve(vec![token_v1(), response(200, &[], &body.to_string())]).await;
    let client = client(&c, fast_retry());
    let out = client.import(&items).await.unwrap();
    assert_eq!(out[0].id.as_deref(), Some("11"));
    assert_eq!(out[1].id.as_deref(), Some("12"));
    assert!(out[2].is_failed);
    let reqs = c.requests.lock().unwrap().clone();
    assert!(reqs[1].starts_with("POST /api/indicators/import "));
    assert!(reqs[1].contains(r#"{"Indicators":[{"indicatorValue":"#), "{}", reqs[1]);
}

#[test]
fn the_client_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<DefenderClient>();
}
