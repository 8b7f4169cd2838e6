//! A `SessionStore` that times every command of the store under it and counts its failures, by
//! operation class (`metrics::StoreOperation`). It passes values and answers through untouched.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

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

    async fn timed<T>(
        &self,
        operation: StoreOperation,
        command: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = command.await;
        self.metrics
            .record_store_command(operation, started.elapsed(), result.is_err());
        result
    }
}

#[async_trait]
impl SessionStore for InstrumentedStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        self.timed(StoreOperation::Write, self.store.put(key, value, ttl))
            .await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let command = self.store.put_if_absent(key, value, ttl);
        self.timed(StoreOperation::Write, command).await
    }

    async fn put_if_present(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let command = self.store.put_if_present(key, value, ttl);
        self.timed(StoreOperation::Write, command).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(StoreOperation::Read, self.store.get(key)).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(StoreOperation::Take, self.store.take(key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.timed(StoreOperation::Delete, self.store.delete(key))
            .await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let command = self.store.delete_if_equals(key, expected);
        self.timed(StoreOperation::Delete, command).await
    }

    async fn add_to_set(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let command = self.store.add_to_set(key, member, ttl);
        self.timed(StoreOperation::Write, command).await
    }

    async fn remove_from_set(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let command = self.store.remove_from_set(key, member);
        self.timed(StoreOperation::Delete, command).await
    }

    async fn take_set(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.timed(StoreOperation::Take, self.store.take_set(key))
            .await
    }

    async fn push_bounded(
        &self,
        key: &str,
        member: &str,
        max_len: usize,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let command = self.store.push_bounded(key, member, max_len, ttl);
        self.timed(StoreOperation::Write, command).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(StoreOperation::Ping, self.store.ping()).await
    }

    fn watch_changes(
        &self,
        prefix: &str,
        listener: std::sync::Arc<dyn super::InvalidationListener>,
    ) -> bool {
        self.store.watch_changes(prefix, listener)
    }
}
