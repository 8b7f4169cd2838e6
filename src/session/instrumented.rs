//! A `SessionStore` that times every command of the store under it and counts its failures, by
//! operation class (`metrics::StoreOperation`). It passes values and answers through untouched.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::forwarding::{ForwardingStore, StoreCommand};
use super::store::{SessionStore, StoreError};
use crate::metrics::{Metrics, StoreOperation};

pub struct InstrumentedStore {
    store: Arc<dyn SessionStore>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    pub fn new(store: Arc<dyn SessionStore>, metrics: Arc<Metrics>) -> Self {
        InstrumentedStore { store, metrics }
    }
}

impl ForwardingStore for InstrumentedStore {
    fn inner(&self) -> &dyn SessionStore {
        &*self.store
    }

    async fn forward<T: Send>(
        &self,
        command: StoreCommand,
        run: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = run.await;
        self.metrics.record_store_command(
            operation_class(command),
            started.elapsed(),
            result.is_err(),
        );
        result
    }
}

/// The metric's class of each command.
fn operation_class(command: StoreCommand) -> StoreOperation {
    match command {
        StoreCommand::Get => StoreOperation::Read,
        StoreCommand::Put
        | StoreCommand::PutIfAbsent
        | StoreCommand::PutIfPresent
        | StoreCommand::AddToSet
        | StoreCommand::PushBounded => StoreOperation::Write,
        StoreCommand::Take | StoreCommand::TakeSet => StoreOperation::Take,
        StoreCommand::Delete | StoreCommand::DeleteIfEquals | StoreCommand::RemoveFromSet => {
            StoreOperation::Delete
        }
        StoreCommand::Ping => StoreOperation::Ping,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::ProviderView;
    use crate::session::memory::MemoryStore;

    #[tokio::test]
    async fn every_command_is_counted_under_its_class() {
        let metrics = Arc::new(Metrics::default());
        let store = InstrumentedStore::new(Arc::new(MemoryStore::new()), metrics.clone());
        let store: &dyn SessionStore = &store;
        let ttl = Duration::from_secs(60);
        store.put("k", b"v".to_vec(), ttl).await.unwrap();
        store.push_bounded("list", "m", 2, ttl).await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.take("k").await.unwrap(), Some(b"v".to_vec()));
        store.remove_from_set("set", "m").await.unwrap();
        store.ping().await.unwrap();
        let text = metrics.render(&[ProviderView {
            name: "default",
            ready: true,
            idp: None,
        }]);
        for (operation, count) in [
            ("write", 2),
            ("read", 1),
            ("take", 1),
            ("delete", 1),
            ("ping", 1),
        ] {
            let line = format!(
                "oidc_authz_store_duration_seconds_count{{operation=\"{operation}\"}} {count}"
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
}
