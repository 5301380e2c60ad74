//! The call log records family, status, batch size, client id, throttling and faults.

use iocsync_emulator::{DEFAULT_CLIENT_ID, EndpointFamily, Fault, FaultRule, Trigger};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn records_every_call() {
    let env = env().await;
    env.import(vec![ip(1), ip(2), ip(3)]).await;
    env.post("/api/indicators/BatchDelete", &json!({"IndicatorIds": ["1", "2"]})).await;
    env.emu.inject(FaultRule {
        family: Some(EndpointFamily::List),
        fault: Fault::Status(500),
        trigger: Trigger::Nth(1),
    });
    env.get("/api/v1.0/indicators").await;
    let calls = env.emu.calls();
    let fam: Vec<EndpointFamily> = calls.iter().map(|c| c.family).collect();
    assert_eq!(
        fam,
        [EndpointFamily::Token, EndpointFamily::Import, EndpointFamily::BatchDelete, EndpointFamily::List]
    );
    assert_eq!(calls[0].client_id.as_deref(), Some(DEFAULT_CLIENT_ID));
    assert_eq!(calls[1].batch_size, Some(3));
    assert_eq!(calls[1].method, "POST");
    assert_eq!(calls[1].path, "/api/indicators/import");
    assert_eq!(calls[1].status, 200);
    assert_eq!(calls[2].batch_size, Some(2));
    assert_eq!(calls[2].status, 204);
    assert_eq!(calls[3].status, 500);
    assert_eq!(calls[3].fault, Some(Fault::Status(500)));
    assert_eq!(calls[1].at, t0());
    env.emu.clear_calls();
    assert!(env.emu.calls().is_empty());
}
