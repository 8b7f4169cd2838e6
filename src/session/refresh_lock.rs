//! The refresh lock of `Sessions`: one refresher per session across replicas sharing a store,
//! released only by its holder (`flow/refresh.rs` decides when to take it).

use std::time::Duration;

use super::{SessionId, Sessions};
use crate::error::Error;

impl Sessions {
    fn refresh_lock_key(&self, id: &SessionId) -> String {
        self.key("refresh-lock", "session id", &id.0)
    }

    /// Takes the session's refresh lock as `holder` (a random token of the caller's) for `ttl`;
    /// `false` when another refresher holds it.
    #[tracing::instrument(skip_all, name = "store.try_lock_refresh")]
    pub async fn try_lock_refresh(
        &self,
        id: &SessionId,
        holder: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        Ok(self
            .store
            .put_if_absent(&self.refresh_lock_key(id), holder.to_vec(), ttl)
            .await?)
    }

    /// Releases the session's refresh lock if `holder` still holds it: a lock that expired under
    /// a slow holder and was taken by another refresher stays theirs.
    #[tracing::instrument(skip_all, name = "store.unlock_refresh")]
    pub async fn unlock_refresh(&self, id: &SessionId, holder: &[u8]) -> Result<(), Error> {
        self.store
            .delete_if_equals(&self.refresh_lock_key(id), holder)
            .await?;
        Ok(())
    }
}
