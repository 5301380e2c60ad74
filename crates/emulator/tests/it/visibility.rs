//! Ti.ReadWrite sees and changes only its own indicators; Ti.ReadWrite.All sees everything.

use iocsync_emulator::{Behaviour, ForeignDeleteStatus, SeedIndicator};
use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn own_only_role() {
    let env = env().await;
    let portal = env.emu.seed(SeedIndicator::portal(
        "DomainName",
        "portal.example",
        "Block",
        "analyst@contoso.example",
    ));
    let own = token_for(&env.http, &env.emu, OWN_APP, OWN_SECRET).await;
    let r = env.call_as(&own, Method::POST, "/api/indicators", Some(&ip(3))).await;
    assert_eq!(r.status, 200);
    let mine = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["createdByDisplayName"], "Own-App");

    let listed = env.call_as(&own, Method::GET, "/api/indicators", None).await.json();
    let ids: Vec<&str> =
        listed["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![mine.as_str()]);
    assert_eq!(env.call_as(&own, Method::GET, &format!("/api/indicators/{portal}"), None).await.status, 404);

    // Deleting another creator's indicator is refused (403 by default) and changes nothing.
    let r = env.call_as(&own, Method::DELETE, &format!("/api/indicators/{portal}"), None).await;
    assert_eq!((r.status, r.code().as_str()), (403, "Forbidden"));
    let r = env
        .call_as(
            &own,
            Method::POST,
            "/api/indicators/BatchDelete",
            Some(&json!({"IndicatorIds": [mine, portal]})),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(env.emu.indicators().len(), 2);

    // The all-role sees both.
    assert_eq!(env.get("/api/indicators").await.json()["value"].as_array().unwrap().len(), 2);

    env.emu
        .set_behaviour(Behaviour { foreign_delete: ForeignDeleteStatus::NotFound, ..Behaviour::default() });
    let r = env.call_as(&own, Method::DELETE, &format!("/api/indicators/{portal}"), None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn own_only_upsert_never_touches_foreign_rows() {
    let env = env().await;
    let other = env.emu.seed(SeedIndicator::app("IpAddress", "8.0.0.3", "Block", "other-app-id", "Other"));
    let own = token_for(&env.http, &env.emu, OWN_APP, OWN_SECRET).await;
    let r = env.call_as(&own, Method::POST, "/api/indicators", Some(&ip(3))).await.json();
    assert_ne!(r["id"].as_str().unwrap(), other);
    let seeded = env.emu.indicators().into_iter().find(|i| i.id == other).unwrap();
    assert_eq!(seeded.last_updated_by, None);
    assert_eq!(seeded.created_by_source, "PublicApi");
}
