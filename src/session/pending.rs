//! The pending logins of `Sessions`: sealed under a hash of `state`, taken once by the callback,
//! at most `max_pending` per browser (its login cookie's list).

use std::time::Duration;

use super::{PendingLoginRecord, Sessions};
use crate::error::Error;

impl Sessions {
    pub(super) fn pending_key(&self, state: &str) -> String {
        self.key("login", "state", state.as_bytes())
    }

    #[tracing::instrument(skip_all, name = "store.put_pending")]
    pub async fn put_pending(
        &self,
        state: &str,
        record: &PendingLoginRecord,
        ttl: Duration,
    ) -> Result<(), Error> {
        let key = self.pending_key(state);
        let sealed = self.sealed(&key, record)?;
        self.store.put(&key, sealed, ttl).await?;
        Ok(())
    }

    pub(super) fn pending_list_key(&self, browser_binding: &[u8]) -> String {
        self.key("login-binding", "pending logins of", browser_binding)
    }

    /// Lists the pending login for `state` under its browser's login cookie (`browser_binding`)
    /// and deletes the ones beyond the newest `max_pending`: one browser, however many tabs or
    /// requests, holds at most `max_pending` pending logins.
    #[tracing::instrument(skip_all, name = "store.bound_pending_per_browser")]
    pub async fn bound_pending_per_browser(
        &self,
        browser_binding: &[u8],
        state: &str,
        max_pending: usize,
        ttl: Duration,
    ) -> Result<(), Error> {
        let dropped = self
            .store
            .push_bounded(
                &self.pending_list_key(browser_binding),
                &self.pending_key(state),
                max_pending,
                ttl,
            )
            .await?;
        for pending_key in dropped {
            self.store.delete(&pending_key).await?;
        }
        Ok(())
    }

    /// Takes the pending login for `state` exactly once: a replayed callback finds nothing.
    #[tracing::instrument(skip_all, name = "store.take_pending")]
    pub async fn take_pending(&self, state: &str) -> Result<Option<PendingLoginRecord>, Error> {
        let key = self.pending_key(state);
        let Some(bytes) = self.store.take(&key).await? else {
            return Ok(None);
        };
        Ok(self
            .opened::<PendingLoginRecord>(&key, &bytes)
            .map(|(record, _)| record))
    }
}
