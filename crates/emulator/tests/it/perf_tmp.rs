use crate::common::*;
#[tokio::test]
#[allow(clippy::print_stderr)]
async fn perf() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cfg, clock) = config();
    cfg.state_file = Some(dir.path().join("s.json"));
    let env = env_with((cfg, clock)).await;
    let t = std::time::Instant::now();
    for b in 0..30u32 {
        let r = env.import((0..500).map(|i| ip(b * 500 + i)).collect()).await;
        assert_eq!(r.status, 200);
    }
    let imp = t.elapsed();
    let t = std::time::Instant::now();
    let v = env.get("/api/indicators").await;
    let list = t.elapsed();
    eprintln!("PERF import 15000 in 30 calls: {imp:?}; list page 10000: {list:?} ({} bytes)", v.text.len());
    let t = std::time::Instant::now();
    env.emu.shutdown().await;
    eprintln!(
        "PERF shutdown+save {:?} size {}",
        t.elapsed(),
        std::fs::metadata(dir.path().join("s.json")).unwrap().len()
    );
}
