//! CLIENT PAUSE and CLIENT REPLY around each command: a paused command
//! waits, and a command whose reply is not wanted runs alone so that its
//! reply can be dropped.

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::Command;

use super::forward::Forwarding;
use super::RespSession;
use crate::session::Flow;

/// CLIENT REPLY's modes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Replies {
    On,
    Off,
    /// The next command's reply is dropped, then On again.
    Skip,
}

impl RespSession {
    /// One decoded command, after any CLIENT PAUSE it falls under; with
    /// CLIENT REPLY OFF or SKIP (and CLIENT REPLY itself) run alone so that
    /// its reply can be dropped.
    pub(super) async fn take(
        &mut self,
        command: Command,
        batch: &mut Forwarding,
        output: &mut BytesMut,
    ) -> Flow {
        let clients = &self.shared.clients;
        if let Some(wait) =
            clients.pause_left(|| crate::config::permissions::is_write(&command.args[0]))
        {
            self.flush_forwarded(batch, output).await;
            tokio::time::sleep(wait).await;
        }
        let before = self.replies;
        if before == Replies::On && !is_client_reply(&command.args) {
            return self.take_batched(command, batch, output).await;
        }
        self.flush_forwarded(batch, output).await;
        let mark = output.len();
        let mut alone = Forwarding::default();
        let flow = self.take_batched(command, &mut alone, output).await;
        self.flush_forwarded(&mut alone, output).await;
        let dropped = match (before, self.replies) {
            (_, Replies::On) => false,
            (Replies::Skip, Replies::Skip) => {
                self.replies = Replies::On;
                true
            }
            _ => true,
        };
        if dropped {
            output.truncate(mark);
        }
        flow
    }
}

/// `CLIENT REPLY ...`, which changes whether this very reply is written.
fn is_client_reply(args: &[Bytes]) -> bool {
    args.len() > 1
        && args[0].eq_ignore_ascii_case(b"client")
        && args[1].eq_ignore_ascii_case(b"reply")
}
