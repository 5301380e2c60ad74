//! State persisted to a JSON file and reloaded; ids never reused across reloads.

use iocsync_emulator::EmulatorError;

use crate::common::*;

#[tokio::test]
async fn state_survives_restart_and_ids_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.json");
    let (mut cfg, clock) = config();
    cfg.state_file = Some(path.clone());
    let env = env_with((cfg.clone(), clock.clone())).await;
    let r = env.import(vec![ip(1), ip(2)]).await.json();
    let second = r["value"][1]["id"].as_str().unwrap().to_owned();
    assert_eq!(env.delete(&format!("/api/indicators/{second}")).await.status, 204);
    env.emu.shutdown().await;
    assert!(path.exists());

    let env = env_with((cfg.clone(), clock.clone())).await;
    let listed = env.emu.indicators();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].indicator_value, "8.0.0.1");
    let new_id: u64 =
        env.post("/api/indicators", &ip(3)).await.json()["id"].as_str().unwrap().parse().unwrap();
    assert!(new_id > second.parse().unwrap(), "id {new_id} reused");
    env.emu.shutdown().await;
}

#[tokio::test]
async fn corrupt_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.json");
    std::fs::write(&path, "{ not json").unwrap();
    let (mut cfg, _clock) = config();
    cfg.state_file = Some(path);
    let err = iocsync_emulator::start(cfg).await.unwrap_err();
    assert!(matches!(err, EmulatorError::State { .. }), "{err}");
}

#[tokio::test]
async fn non_loopback_listen_is_refused() {
    let (mut cfg, _clock) = config();
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let err = iocsync_emulator::start(cfg).await.unwrap_err();
    assert!(matches!(err, EmulatorError::NonLoopback(_)), "{err}");
}
