//! `wss://` against a local server with a self-signed certificate: refused by default,
//! accepted with `--insecure`.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use soak::SoakError;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{soak, summary};

/// A `wss://` echo server on 127.0.0.1:0 with a fresh self-signed certificate.
async fn self_signed_server() -> String {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    let reply = serde_json::json!({ "id": v["id"] });
                    if ws.send(Message::text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("wss://127.0.0.1:{}/ws", addr.port())
}

const SHORT: [&str; 10] = [
    "--users",
    "2",
    "--rate",
    "10/s",
    "--duration",
    "1s",
    "--ramp-up",
    "0s",
    "--ramp-down",
    "0s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_refused_by_default() {
    let url = self_signed_server().await;
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["--url", url.as_str()];
    args.extend(SHORT);
    match soak(out.path(), &args).await {
        Err(SoakError::CouldNotRun(msg)) => {
            assert!(msg.contains("TLS") && msg.contains("--insecure"), "{msg}")
        }
        other => panic!("expected exit 3 for an untrusted certificate, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_a_self_signed_certificate() {
    let url = self_signed_server().await;
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["--url", url.as_str(), "--insecure"];
    args.extend(SHORT);
    soak(out.path(), &args).await.unwrap();
    let s = summary(out.path());
    assert_eq!(s["connects"]["successes"], 2);
    assert!(s["totals"]["received"].as_u64().unwrap() > 10, "{s}");
    assert_eq!(s["config"]["target"]["insecure"], true);
}
