//! Bastions (jump hosts): one connection per bastion per run, shared by every node behind it.
//!
//! Why shared: a bastion is usually one small machine; 100 nodes must not mean 100 logins to it (nor 100
//! key exchanges). Each node gets its own direct-tcpip channel on the one connection, and its own SSH
//! session inside that channel, end to end: the bastion relays bytes and never sees the node's session.
//! The pool belongs to the run (`Run` makes one context, and every target it builds shares its
//! `Bastions`); a failed bastion is remembered too, so its error is reported for every node instead
//! of retried once per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use russh::client::Handle;
use tokio::sync::OnceCell;

use super::session::{self, Client};
use super::{Target, TransportError};

type Shared = Arc<Handle<Client>>;
/// The bastion's error, rendered (TransportError is not Clone), and whether it was a host-key refusal.
type Failure = (String, bool);
type Slot = Arc<OnceCell<Result<Shared, Failure>>>;

/// A run's bastion connections, by everything that makes two of them interchangeable.
#[derive(Default)]
pub struct Bastions(Mutex<HashMap<String, Slot>>);

impl std::fmt::Debug for Bastions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bastions")
    }
}

/// Everything that makes two bastion connections interchangeable.
fn key(jump: &Target) -> String {
    format!(
        "{}@{} {:?} {:?} {:?}",
        jump.user,
        jump.addr(),
        jump.identity_files,
        jump.agent,
        jump.known_hosts
    )
}

impl Bastions {
    /// The open connection to `jump`, connecting (once) if needed. Errors name `node`.
    pub(crate) async fn connection(
        &self,
        node: &str,
        jump: &Target,
    ) -> Result<Shared, TransportError> {
        let slot = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key(jump)).or_default().clone()
        };
        let result = slot
            .get_or_init(|| async {
                // Boxed: `open` reaches this function for nodes behind a bastion (the bastion itself has none).
                Box::pin(session::open(jump))
                    .await
                    .map(Arc::new)
                    .map_err(|e| (e.to_string(), e.is_refusal()))
            })
            .await;
        match result {
            Ok(handle) => Ok(handle.clone()),
            Err((message, refused)) => Err(TransportError::Bastion {
                node: node.to_string(),
                message: message.clone(),
                refused: *refused,
            }),
        }
    }
}
