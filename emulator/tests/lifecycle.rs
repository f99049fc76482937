//! Start on a chosen port, stop on shutdown() and when the last handle is dropped.

use entra_emulator::{Emulator, EmulatorOptions};
use std::time::Duration;

async fn reachable(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn chosen_port_urls_and_ca() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let emu = Emulator::start_with(EmulatorOptions { port })
        .await
        .unwrap();
    assert_eq!(emu.port(), port);
    assert_eq!(emu.authority_host(), format!("https://127.0.0.1:{port}"));
    assert_eq!(
        emu.base_url().as_str(),
        format!("https://127.0.0.1:{port}/")
    );
    assert!(emu.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let dir = tempfile::tempdir().unwrap();
    emu.write_ca_pem(&dir.path().join("ca.pem")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        emu.ca_pem()
    );
    // `localhost` is in the certificate too
    let client = emu.reqwest_client();
    let r = client
        .get(format!("https://localhost:{port}/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // a client without the CA refuses the server
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(plain.get(emu.authority_host()).send().await.is_err());
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let emu = Emulator::start().await.unwrap();
    let client = emu.reqwest_client();
    let url = format!("{}/x", emu.authority_host());
    assert!(reachable(&client, &url).await);
    emu.shutdown().await;
    let fresh = emu.reqwest_client();
    assert!(!reachable(&fresh, &url).await);

    let emu = Emulator::start().await.unwrap();
    let clone = emu.clone();
    let url = format!("{}/x", emu.authority_host());
    drop(emu);
    assert!(
        reachable(&clone.reqwest_client(), &url).await,
        "a clone keeps it alive"
    );
    let client = clone.reqwest_client();
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reachable(&client, &url).await);
}
