//! One cached session, compact: the key as the 32-byte hash its store key is made from (and its
//! provider's namespace, by number), the record's kept texts in one allocation, its timestamps
//! inline. What the cache holds per session; `CompactSession::session` turns it back into the
//! `SessionRecord` the flow reads, on each hit.

use std::sync::Arc;

use super::{CachedSession, Keep};
use crate::session::{SESSION_KEY_PREFIX, SessionRecord};

/// The hex digits of a session key's hash (`Sessions::key`: 32 bytes as lower-case hex).
const HASH_HEX_LENGTH: usize = 64;

/// A session key (`session:<namespace><64 hex>`) in 33 bytes instead of an 80-byte `String`:
/// which namespace (an index into the cache's list of them) and the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EntryKey {
    pub namespace: u8,
    pub hash: [u8; 32],
}

/// The map's hash of an entry: eight bytes of the SHA-256 the key already is. No keyed hash is
/// needed against chosen collisions: a session key is the hash of a session id that came in a
/// cookie with a valid MAC, so no client picks it, and picking one would take SHA-256 preimages.
impl std::hash::Hash for EntryKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.hash;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]) ^ u64::from(self.namespace));
    }
}

/// Hashes an `EntryKey` to the one `u64` it writes.
#[derive(Clone, Copy, Default)]
pub(super) struct EntryKeyHasher(u64);

impl std::hash::Hasher for EntryKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (`EntryKey::hash`); anything else still hashes, slowly.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The `BuildHasher` of the cache's map.
pub(super) type EntryKeyHashing = std::hash::BuildHasherDefault<EntryKeyHasher>;

/// A session key's namespace (`""` or `"<provider>:"`) and hash; `None` for any other key. Only
/// lower-case hex is read, as `Sessions` writes it, so two keys never give one (namespace, hash).
pub(super) fn split_session_key(key: &str) -> Option<(&str, [u8; 32])> {
    let rest = key.strip_prefix(SESSION_KEY_PREFIX)?;
    let split = rest.len().checked_sub(HASH_HEX_LENGTH)?;
    let (namespace, hex) = (rest.get(..split)?, rest.get(split..)?);
    // A table and one check at the end: this runs on every cached Check.
    let mut hash = [0u8; 32];
    let mut not_hex = 0;
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        not_hex |= high | low;
        *byte = high << 4 | low;
    }
    (not_hex & NOT_HEX == 0).then_some((namespace, hash))
}

/// Marks a byte that is not a lower-case hex digit in `HEX_VALUES`.
const NOT_HEX: u8 = 0xf0;

/// Each byte's value as a lower-case hex digit, or `NOT_HEX`.
static HEX_VALUES: [u8; 256] = hex_values();

const fn hex_values() -> [u8; 256] {
    let mut values = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        values[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
}

/// What the cache keeps of a session (`Keep`) in one allocation: `texts` holds the access token,
/// subject, IdP session id, ID token and claims JSON one after another (the last two empty unless
/// kept). About 200 bytes less than an `Arc<SessionRecord>` of mostly empty `String`s, an
/// allocation per text and a `String` key. Cloned under the cache's lock (a reference count and
/// 40 bytes), so the record is built from it after the lock is released.
#[derive(Clone)]
pub(super) struct CompactSession {
    /// `Arc`, not `Box` (16 bytes more per session): a hit copies the texts outside the lock.
    texts: Arc<str>,
    /// Where the access token, subject, IdP session id and ID token end in `texts`; the claims
    /// JSON is the rest.
    ends: [u32; 4],
    access_token_expires_at: i64,
    created_at: i64,
    last_active_at: i64,
    sealed_by_old_key: bool,
}

impl CompactSession {
    /// What `keep` asks for of `session` (never the refresh token); `None` (not cached) when the
    /// texts before the claims pass 4 GiB.
    pub fn new(session: &CachedSession, keep: Keep) -> Option<Self> {
        let record = &session.record;
        // A record from before `claims_json` finds its claims in the ID token.
        let id_token_for_claims = keep.claims && record.claims_json.is_empty();
        let id_token = if keep.id_token || id_token_for_claims {
            record.id_token.as_str()
        } else {
            ""
        };
        let claims_json = if keep.claims {
            record.claims_json.as_str()
        } else {
            ""
        };
        let parts = [
            record.access_token.as_str(),
            &record.subject,
            &record.idp_session_id,
            id_token,
            claims_json,
        ];
        let mut texts = String::with_capacity(parts.iter().map(|part| part.len()).sum());
        let mut ends = [0u32; 4];
        for (index, part) in parts.iter().enumerate() {
            texts.push_str(part);
            if let Some(end) = ends.get_mut(index) {
                *end = u32::try_from(texts.len()).ok()?;
            }
        }
        Some(CompactSession {
            texts: Arc::from(texts),
            ends,
            access_token_expires_at: record.access_token_expires_at,
            created_at: record.created_at,
            last_active_at: record.last_active_at,
            sealed_by_old_key: session.sealed_by_old_key,
        })
    }

    /// The kept session as the flow reads it: a trimmed record (`complete: false`).
    pub fn session(&self) -> CachedSession {
        let [access_token, subject, idp_session_id, id_token] = self.ends.map(|end| end as usize);
        let text = |from: usize, to: usize| self.texts[from..to].to_owned();
        let record = SessionRecord {
            access_token: text(0, access_token),
            subject: text(access_token, subject),
            idp_session_id: text(subject, idp_session_id),
            id_token: text(idp_session_id, id_token),
            claims_json: text(id_token, self.texts.len()),
            refresh_token: String::new(),
            access_token_expires_at: self.access_token_expires_at,
            created_at: self.created_at,
            last_active_at: self.last_active_at,
            claims: Default::default(),
        };
        CachedSession {
            record: Arc::new(record),
            sealed_by_old_key: self.sealed_by_old_key,
            complete: false,
        }
    }
}
