//! `ForwardingStore`: a store that wraps another and changes only what it must (times every
//! command, fails some, records what it saw), passing every other command to the store under it.
//! A wrapper implements `ForwardingStore` and gets `SessionStore` from the blanket impl here, so
//! the command signatures are written twice in all (`SessionStore`, and here), not once per
//! wrapper. The real stores (memory, Redis) implement `SessionStore` itself, so the compiler still
//! makes them answer every command.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::store::{InvalidationListener, SessionStore, StoreError};

/// Which command a forwarded call is, for a wrapper that treats every command alike
/// (`ForwardingStore::forward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreCommand {
    Put,
    PutIfAbsent,
    PutIfPresent,
    Get,
    Take,
    Delete,
    DeleteIfEquals,
    AddToSet,
    RemoveFromSet,
    TakeSet,
    PushBounded,
    Ping,
}

/// A `SessionStore` made of another: every command it does not override goes to `inner()`
/// through `forward`. The commands are `-> impl Future` (no boxing, unlike `SessionStore`'s):
/// a wrapper on the hot path (`InstrumentedStore`) costs no allocation of its own.
pub trait ForwardingStore: Send + Sync + 'static {
    /// The store every command not overridden goes to.
    fn inner(&self) -> &dyn SessionStore;

    /// Runs each command that is not overridden, given which one it is and the inner store's
    /// call (not yet started); by default just that call. Override it to do the same thing around
    /// every command (time it, refuse it).
    fn forward<T: Send>(
        &self,
        command: StoreCommand,
        run: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> impl Future<Output = Result<T, StoreError>> + Send {
        let _ = command;
        run
    }

    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            self.forward(StoreCommand::Put, self.inner().put(key, value, ttl))
                .await
        }
    }

    fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            let command = self.inner().put_if_absent(key, value, ttl);
            self.forward(StoreCommand::PutIfAbsent, command).await
        }
    }

    fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            let command = self.inner().put_if_present(key, value, ttl);
            self.forward(StoreCommand::PutIfPresent, command).await
        }
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        async move { self.forward(StoreCommand::Get, self.inner().get(key)).await }
    }

    fn take(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
        async move {
            self.forward(StoreCommand::Take, self.inner().take(key))
                .await
        }
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            self.forward(StoreCommand::Delete, self.inner().delete(key))
                .await
        }
    }

    fn delete_if_equals(
        &self,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            let command = self.inner().delete_if_equals(key, expected);
            self.forward(StoreCommand::DeleteIfEquals, command).await
        }
    }

    fn add_to_set(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let command = self.inner().add_to_set(key, member, ttl);
            self.forward(StoreCommand::AddToSet, command).await
        }
    }

    fn remove_from_set(
        &self,
        key: &str,
        member: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let command = self.inner().remove_from_set(key, member);
            self.forward(StoreCommand::RemoveFromSet, command).await
        }
    }

    fn take_set(&self, key: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            self.forward(StoreCommand::TakeSet, self.inner().take_set(key))
                .await
        }
    }

    fn push_bounded(
        &self,
        key: &str,
        member: &str,
        max_len: usize,
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            let command = self.inner().push_bounded(key, member, max_len, ttl);
            self.forward(StoreCommand::PushBounded, command).await
        }
    }

    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move { self.forward(StoreCommand::Ping, self.inner().ping()).await }
    }

    fn watch_changes(&self, prefix: &str, listener: Arc<dyn InvalidationListener>) -> bool {
        self.inner().watch_changes(prefix, listener)
    }
}

/// Every `ForwardingStore` is a `SessionStore`: each command is the wrapper's.
#[async_trait]
impl<Wrapper: ForwardingStore> SessionStore for Wrapper {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        ForwardingStore::put(self, key, value, ttl).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        ForwardingStore::put_if_absent(self, key, value, ttl).await
    }

    async fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        ForwardingStore::put_if_present(self, key, value, ttl).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        ForwardingStore::get(self, key).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        ForwardingStore::take(self, key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        ForwardingStore::delete(self, key).await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        ForwardingStore::delete_if_equals(self, key, expected).await
    }

    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        ForwardingStore::add_to_set(self, key, member, ttl).await
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        ForwardingStore::remove_from_set(self, key, member).await
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        ForwardingStore::take_set(self, key).await
    }

    async fn push_bounded(
        &self,
        key: &str,
        member: &str,
        max_len: usize,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        ForwardingStore::push_bounded(self, key, member, max_len, ttl).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        ForwardingStore::ping(self).await
    }

    fn watch_changes(&self, prefix: &str, listener: Arc<dyn InvalidationListener>) -> bool {
        ForwardingStore::watch_changes(self, prefix, listener)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::session::memory::MemoryStore;

    const TTL: Duration = Duration::from_secs(60);

    /// Records every command `forward` runs, and answers `take` itself.
    #[derive(Default)]
    struct Recorder {
        store: MemoryStore,
        forwarded: Mutex<Vec<StoreCommand>>,
    }

    impl ForwardingStore for Recorder {
        fn inner(&self) -> &dyn SessionStore {
            &self.store
        }

        async fn forward<T: Send>(
            &self,
            command: StoreCommand,
            run: impl Future<Output = Result<T, StoreError>> + Send,
        ) -> Result<T, StoreError> {
            self.forwarded.lock().unwrap().push(command);
            run.await
        }

        async fn take(&self, _key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(Some(b"overridden".to_vec()))
        }
    }

    #[tokio::test]
    async fn commands_not_overridden_reach_the_inner_store_through_forward() {
        let recorder = Recorder::default();
        let store: &dyn SessionStore = &recorder;
        store.put("k", b"v".to_vec(), TTL).await.unwrap();
        assert!(store.put_if_present("k", b"w".to_vec(), TTL).await.unwrap());
        assert_eq!(store.get("k").await.unwrap(), Some(b"w".to_vec()));
        store.add_to_set("set", "m", TTL).await.unwrap();
        assert_eq!(store.take_set("set").await.unwrap(), vec!["m".to_owned()]);
        store.ping().await.unwrap();
        assert_eq!(
            *recorder.forwarded.lock().unwrap(),
            [
                StoreCommand::Put,
                StoreCommand::PutIfPresent,
                StoreCommand::Get,
                StoreCommand::AddToSet,
                StoreCommand::TakeSet,
                StoreCommand::Ping,
            ]
        );
        assert_eq!(recorder.store.get("k").await.unwrap(), Some(b"w".to_vec()));
    }

    #[tokio::test]
    async fn an_overridden_command_is_the_wrappers_own() {
        let recorder = Recorder::default();
        recorder.store.put("k", b"v".to_vec(), TTL).await.unwrap();
        let store: &dyn SessionStore = &recorder;
        assert_eq!(store.take("k").await.unwrap(), Some(b"overridden".to_vec()));
        assert!(recorder.forwarded.lock().unwrap().is_empty());
        assert_eq!(recorder.store.get("k").await.unwrap(), Some(b"v".to_vec()));
    }
}
