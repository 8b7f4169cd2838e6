//! Where Checks and the admin endpoint are served from: `GrpcListener` (TCP with `SO_REUSEPORT`,
//! or a Unix socket removed at exit only if it is still ours) and `bind_reusable`.

use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use crate::config::ListenAddress;

/// Where gRPC Check is served: a TCP port, or a Unix socket whose file is removed when serving ends.
pub enum GrpcListener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// The socket file's inode: at exit the file is removed only if it is still ours, not one
        /// a newer process (started while this one drained) put in its place.
        inode: u64,
    },
}

impl From<TcpListener> for GrpcListener {
    fn from(listener: TcpListener) -> Self {
        GrpcListener::Tcp(listener)
    }
}

impl GrpcListener {
    /// Binds `address`. A socket file left by a previous run is replaced; any other file at the
    /// path is left alone (and binding fails).
    pub async fn bind(address: &ListenAddress) -> std::io::Result<GrpcListener> {
        match address {
            ListenAddress::Tcp(address) => Ok(GrpcListener::Tcp(bind_reusable(*address)?)),
            ListenAddress::Unix(path) => {
                use std::os::unix::fs::MetadataExt;
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                Ok(GrpcListener::Unix {
                    listener,
                    path: path.clone(),
                    inode: std::fs::symlink_metadata(path)?.ino(),
                })
            }
        }
    }
}

/// Pending connections the kernel queues before `accept` (tokio's `TcpListener::bind` default).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `address` with `SO_REUSEPORT`: while an old process drains, a new one can bind the same
/// port and the kernel spreads new connections over both; when the old one closes its listener,
/// all go to the new one. Linux allows this only between sockets of the same user, so another
/// user cannot take over the port. Used for the admin port too: the new process must start while
/// the old one still answers `/readyz` ("draining").
pub fn bind_reusable(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Removes the socket file at `path` if it is the one this process bound (same inode).
pub(super) fn remove_own_socket(path: &Path, inode: u64) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}
