//! Configuration tests for `listen`: a TCP address or a Unix socket (`unix:/path`), and the
//! mistakes, each with its key path.

use std::path::PathBuf;

use super::tests::{MINIMAL, problems};
use super::*;

fn listen(yaml: &str) -> ListenAddress {
    load_from_str(&format!("{MINIMAL}{yaml}"), "test.yaml", Vec::new())
        .unwrap()
        .0
        .listen
}

#[test]
fn listen_is_a_tcp_address_or_a_unix_socket() {
    assert_eq!(
        listen("listen: '0.0.0.0:9000'\n"),
        ListenAddress::Tcp("0.0.0.0:9000".parse().unwrap())
    );
    let unix = listen("listen: unix:/run/oidc-authz/grpc.sock\n");
    assert_eq!(
        unix,
        ListenAddress::Unix(PathBuf::from("/run/oidc-authz/grpc.sock"))
    );
    assert_eq!(unix.to_string(), "unix:/run/oidc-authz/grpc.sock");
}

#[test]
fn bad_unix_socket_paths_are_reported_with_the_key() {
    let too_long = format!("listen: unix:/{}\n", "s".repeat(107));
    for (yaml, expected) in [
        (
            "listen: unix:grpc.sock\n",
            "listen: `unix:grpc.sock` needs an absolute socket path",
        ),
        (
            "listen: 'unix:'\n",
            "listen: `unix:` needs an absolute socket path",
        ),
        (
            "listen: unix:/run/\n",
            "listen: `unix:/run/` needs an absolute socket path",
        ),
        (
            too_long.as_str(),
            "listen: the socket path is 108 bytes; Unix sockets take at most 107",
        ),
        (
            "listen: /run/grpc.sock\n",
            "listen: `/run/grpc.sock` is not an address like 127.0.0.1:9191",
        ),
    ] {
        let found = problems(&format!("{MINIMAL}{yaml}"));
        assert!(
            found.iter().any(|problem| problem.starts_with(expected)),
            "{yaml}: {found:?}"
        );
    }
}
