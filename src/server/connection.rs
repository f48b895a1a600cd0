//! One task per client connection: read what is available, let the frontend
//! answer every complete request in it (pipelining), write all replies at once.

use std::future::Future;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{Current, Shared};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Close after writing what is buffered (quit, or an unframeable stream).
    Close,
}

/// A protocol frontend's per-connection state.
pub trait Session: Send {
    /// Answers every complete request in `input`, consuming it and appending
    /// replies to `output`, in order.
    fn process(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
    ) -> impl Future<Output = Flow> + Send;

    /// The generation of the configuration this session runs on; replaced
    /// between batches when a reload swaps in a new one.
    fn shared_mut(&mut self) -> &mut Arc<Shared>;
}

const READ_CHUNK: usize = 16 * 1024;

pub async fn serve<S: Session>(
    mut stream: TcpStream,
    mut session: S,
    current: Current,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    // The same counters in every generation.
    let stats = session.shared_mut().stats.clone();
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        // Only the wait for new bytes is cancelled on shutdown: requests
        // already read are answered before the connection closes.
        let read = tokio::select! {
            read = stream.read_buf(&mut input) => read,
            () = shutdown.cancelled() => break,
        };
        // A reload swapped in a new generation: requests read from now on
        // run on it. (A pointer comparison when nothing changed.)
        let latest = current.load();
        let shared = session.shared_mut();
        if !Arc::ptr_eq(&latest, shared) {
            *shared = Arc::clone(&latest);
        }
        drop(latest);
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => stats.bytes_read.add(n as u64),
        }
        let flow = session.process(&mut input, &mut output).await;
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break;
            }
            stats.bytes_written.add(output.len() as u64);
            output.clear();
        }
        if flow == Flow::Close {
            break;
        }
    }
    let _ = stream.shutdown().await;
}
