//! A gRPC connection's socket as h2 should see it: one that does not do vectored writes.
//!
//! Why: h2 copies a DATA frame into its write buffer only if it is smaller than a threshold, 256
//! bytes on a socket that does vectored writes and 1 KiB on one that does not; a larger frame is
//! written straight from its own buffer, and until that write is done no further frame can be
//! buffered. A Check answer that injects a bearer token is larger than 256 bytes, so on a plain
//! `TcpStream` every answer cost a write of its own (its trailers waited for the flush), where
//! answers under 1 KiB now share writes when Envoy has several Checks in flight: fewer syscalls
//! and TCP segments for us and for Envoy (measured with `strace -c`: 1.2 writes per Check before,
//! see ARCHITECTURE.md). Reads, and everything tonic asks of the connection, pass through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// `io` with vectored writes off; see the module doc.
pub struct UnvectoredWrites<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for UnvectoredWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for UnvectoredWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl<T: Connected> Connected for UnvectoredWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_tcp_stream_passes_reads_and_writes_through_without_vectored_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        assert!(client.is_write_vectored(), "what the wrapper turns off");
        let (mut client, mut server) = (UnvectoredWrites(client), UnvectoredWrites(server));
        assert!(!client.is_write_vectored());
        assert_eq!(
            server.connect_info().remote_addr(),
            client.0.local_addr().ok()
        );
        client.write_all(b"check").await.expect("write");
        client.flush().await.expect("flush");
        let mut read = [0u8; 5];
        server.read_exact(&mut read).await.expect("read");
        assert_eq!(&read, b"check");
        client.shutdown().await.expect("shutdown");
        assert_eq!(server.read(&mut read).await.expect("end of stream"), 0);
    }
}
