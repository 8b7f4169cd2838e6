//! The back-channel logout side of `Sessions`: the indexes of sessions by the IdP's `sid` and by
//! `sub` (filled by `create`, emptied by `end`), deleting the sessions an index lists, and the
//! logout tokens' used `jti`s.

use std::time::Duration;

use super::{SessionRecord, Sessions};
use crate::error::Error;

impl Sessions {
    fn index_key(&self, kind: &str, value: &str) -> String {
        self.key(&format!("by-{kind}"), kind, value.as_bytes())
    }

    /// The back-channel indexes a session of `record` is listed in: by `sid` (when the IdP gave
    /// one) and by `sub`.
    pub(super) fn index_keys(&self, record: &SessionRecord) -> Vec<String> {
        let mut keys = Vec::with_capacity(2);
        if !record.idp_session_id.is_empty() {
            keys.push(self.index_key("sid", &record.idp_session_id));
        }
        keys.push(self.index_key("sub", &record.subject));
        keys
    }

    /// Deletes the sessions listed in an index. If the store fails midway, the keys not yet deleted
    /// go back into the index so a retried logout still finds them.
    async fn delete_indexed(&self, index: &str) -> Result<usize, Error> {
        let keys = self.store.take_set(index).await?;
        for (done, key) in keys.iter().enumerate() {
            let deleted = self.store.delete(key).await;
            self.forget(key);
            if let Err(error) = deleted {
                for remaining in &keys[done..] {
                    // Best effort: the store just failed, this may fail too.
                    let _ = self
                        .store
                        .add_to_set(index, remaining, Duration::from_secs(86_400))
                        .await;
                }
                return Err(error.into());
            }
        }
        Ok(keys.len())
    }

    /// Deletes every session of this IdP session; returns how many index entries there were.
    #[tracing::instrument(skip_all, name = "store.delete_by_idp_session")]
    pub async fn delete_by_idp_session(&self, idp_session_id: &str) -> Result<usize, Error> {
        self.delete_indexed(&self.index_key("sid", idp_session_id))
            .await
    }

    #[tracing::instrument(skip_all, name = "store.delete_by_subject")]
    pub async fn delete_by_subject(&self, subject: &str) -> Result<usize, Error> {
        self.delete_indexed(&self.index_key("sub", subject)).await
    }

    fn logout_token_key(&self, jti: &str) -> String {
        self.key("jti", "jti", jti.as_bytes())
    }

    /// Whether a logout token's `jti` was already used.
    #[tracing::instrument(skip_all, name = "store.logout_token_seen")]
    pub async fn logout_token_seen(&self, jti: &str) -> Result<bool, Error> {
        Ok(self.store.get(&self.logout_token_key(jti)).await?.is_some())
    }

    /// Records a used logout token's `jti` until it expires.
    #[tracing::instrument(skip_all, name = "store.remember_logout_token")]
    pub async fn remember_logout_token(&self, jti: &str, ttl: Duration) -> Result<(), Error> {
        self.store
            .put(&self.logout_token_key(jti), vec![1], ttl)
            .await?;
        Ok(())
    }
}
