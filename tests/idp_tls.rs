//! An IdP over https whose certificate is signed by a CA the test makes: discovery fails without
//! `ca_file` (the system's CA store does not know it) and a whole login works with it.
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use oidc_authz::config::load_from_str;
use oidc_authz::oidc::provider::{Provider, ProviderSettings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use support::redis::TestCa;
use support::{Authz, FakeIdp, Req, SwitchableStore, idp};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// Terminates TLS with the CA's server certificate and forwards each connection to `backend`.
fn spawn_tls_proxy(listener: TcpListener, ca_dir: &Path, backend: SocketAddr) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(ca_dir.join("server.crt"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(ca_dir.join("server.key")).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
}

async fn https_idp() -> (FakeIdp, TestCa) {
    let ca = TestCa::create();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let idp = FakeIdp::start_with_issuer(Some(issuer)).await;
    spawn_tls_proxy(listener, &ca.dir, idp.addr);
    (idp, ca)
}

#[tokio::test]
async fn a_private_ca_is_trusted_only_through_ca_file() {
    let (idp, ca) = https_idp().await;
    let yaml = format!(
        "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: {}\n",
        idp.issuer,
        idp::CLIENT_ID,
        idp::CLIENT_SECRET,
        support::KEY_A
    );
    let (config, _) = load_from_str(&yaml, "test.yaml", Vec::new()).unwrap();
    let clock = Arc::new(oidc_authz::clock::SystemClock);
    let untrusting = Provider::new(ProviderSettings::from_config(&config), clock).unwrap();
    let error = untrusting.discover().await.unwrap_err().to_string();
    assert!(error.contains("GET https://127.0.0.1"), "{error}");

    let extra = format!("ca_file: {}\n", ca.dir.join("ca.crt").display());
    let authz = Authz::start(&idp, &extra, SwitchableStore::memory()).await;
    let mut browser = authz.browser();
    let outcome = browser.login(&idp, "/private?x=1").await;
    assert_eq!(outcome.location(), "/private?x=1", "{outcome:?}");
    assert_eq!(browser.send(Req::navigate("/private")).await.status(), 200);
    authz.stop().await;
}
