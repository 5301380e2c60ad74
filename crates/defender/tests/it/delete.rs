//! BatchDelete and get: 404 recovery, ids already gone, missing ids.

use iocsync_emulator::{EmulatorConfig, EndpointFamily};

use crate::common::{calls_of, client_for, emulator, sha_item};

async fn import_ids(client: &iocsync_defender::DefenderClient, n: usize) -> Vec<String> {
    let items: Vec<_> = (0..n).map(sha_item).collect();
    client.import(&items).await.unwrap().into_iter().map(|o| o.id.unwrap()).collect()
}

#[tokio::test]
async fn batch_delete_deletes_and_get_sees_it_gone() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let ids = import_ids(&client, 3).await;
    assert!(client.get(&ids[0]).await.unwrap().is_some());
    let out = client.batch_delete(&ids).await.unwrap();
    assert_eq!(out.deleted, ids);
    assert!(out.already_gone.is_empty());
    assert!(emu.indicators().is_empty());
    assert_eq!(client.get(&ids[0]).await.unwrap(), None);
    assert_eq!(client.get("424242").await.unwrap(), None);
}

#[tokio::test]
async fn a_404_for_some_ids_deletes_the_rest_checking_by_get() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let ids = import_ids(&client, 3).await;
    // A previous run deleted the first one before being killed.
    client.batch_delete(&ids[..1]).await.unwrap();
    let out = client.batch_delete(&ids).await.unwrap();
    assert_eq!(out.already_gone, vec![ids[0].clone()]);
    assert_eq!(out.deleted, ids[1..].to_vec());
    assert!(emu.indicators().is_empty());
    let statuses: Vec<u16> = calls_of(&emu, EndpointFamily::BatchDelete).iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![204, 404, 204]);
    assert_eq!(calls_of(&emu, EndpointFamily::Get).len(), 3);
}

#[tokio::test]
async fn a_404_for_many_ids_is_resolved_with_one_listing() {
    let emu = emulator(EmulatorConfig::default()).await;
    let client = client_for(&emu);
    let ids = import_ids(&client, 20).await;
    client.batch_delete(&ids[..7]).await.unwrap();
    let out = client.batch_delete(&ids).await.unwrap();
    assert_eq!(out.already_gone.len(), 7);
    assert_eq!(out.deleted.len(), 13);
    assert!(emu.indicators().is_empty());
    assert!(calls_of(&emu, EndpointFamily::Get).is_empty());
    assert_eq!(calls_of(&emu, EndpointFamily::List).len(), 1);
}
