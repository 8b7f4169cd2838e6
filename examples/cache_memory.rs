//! The session cache's heap per cached session, counted exactly (issue 10's RSS target): a
//! counting global allocator over the system's, a `SessionCache` filled through its public API as
//! `Sessions::load_cached` fills it (a whole record opened from the store, kept trimmed to
//! `Keep::default()`), with N sessions shaped like a real login (a 664-byte access token, a
//! 36-character subject and `sid`, an ID token, a refresh token and claims that the cache drops).
//!
//! Prints, per cached session: the live bytes asked for, the bytes glibc's malloc holds for them
//! (its chunks: 8 bytes of header, 16-byte steps, 32 at least; what RSS sees, fragmentation aside),
//! and the live allocations; then the allocations and bytes a cache hit makes.
//!
//! Run: `cargo run --release --example cache_memory [N]` (N = 10000 by default). The hits run in
//! `hits`, for `valgrind --tool=callgrind` (its inclusive count over 1000 is one hit's cost).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oidc_authz::crypto::labelled_hash;
use oidc_authz::session::cache::{CachedSession, Keep, SessionCache};
use oidc_authz::session::{InvalidationListener, SessionRecord};

/// Counts what is live: bytes asked for, glibc chunk bytes, allocations; and allocations made.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_CHUNK_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS_MADE: AtomicUsize = AtomicUsize::new(0);

/// The size of glibc's chunk for `size` bytes on a 64-bit target.
fn glibc_chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

fn counted_in(size: usize) {
    LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
    LIVE_CHUNK_BYTES.fetch_add(glibc_chunk(size), Ordering::Relaxed);
    LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATIONS_MADE.fetch_add(1, Ordering::Relaxed);
}

fn counted_out(size: usize) {
    LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
    LIVE_CHUNK_BYTES.fetch_sub(glibc_chunk(size), Ordering::Relaxed);
    LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            counted_in(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            counted_in(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) };
        counted_out(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            counted_out(layout.size());
            counted_in(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy)]
struct Snapshot {
    bytes: usize,
    chunk_bytes: usize,
    allocations: usize,
    made: usize,
}

fn snapshot() -> Snapshot {
    Snapshot {
        bytes: LIVE_BYTES.load(Ordering::Relaxed),
        chunk_bytes: LIVE_CHUNK_BYTES.load(Ordering::Relaxed),
        allocations: LIVE_ALLOCATIONS.load(Ordering::Relaxed),
        made: ALLOCATIONS_MADE.load(Ordering::Relaxed),
    }
}

const DEFAULT_SESSIONS: usize = 10_000;
/// Bounds the run (and its memory).
const MAX_SESSIONS: usize = 1_000_000;
const HIT_ROUNDS: usize = 1000;

/// The store key `Sessions` makes for session number `index` (`session:<64 hex>`).
fn session_key(index: usize) -> String {
    let hash = labelled_hash("session id", &index.to_be_bytes());
    let mut key = String::from("session:");
    for byte in hash {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// `length` characters of base64url-looking text, distinct per `index`.
fn text(index: usize, length: usize) -> String {
    format!("{index:x}.").chars().cycle().take(length).collect()
}

/// A whole record as opened from the store after a real login.
fn opened_record(index: usize) -> CachedSession {
    let record = SessionRecord {
        subject: text(index, 36),
        idp_session_id: text(index + 1, 36),
        access_token: text(index, 664),
        id_token: text(index, 1100),
        refresh_token: text(index, 700),
        access_token_expires_at: 1_800_000_300,
        created_at: 1_800_000_000,
        last_active_at: 1_800_000_000,
        claims: [("email".to_owned(), "someone@example.com".to_owned())].into(),
        claims_json: text(index, 300),
    };
    CachedSession {
        record: Arc::new(record),
        sealed_by_old_key: false,
        complete: true,
    }
}

fn main() -> Result<(), String> {
    let sessions = match std::env::args().nth(1) {
        None => DEFAULT_SESSIONS,
        Some(count) => count
            .parse::<usize>()
            .ok()
            .filter(|count| (1..=MAX_SESSIONS).contains(count))
            .ok_or(format!("usage: cache_memory [N, 1..={MAX_SESSIONS}]"))?,
    };
    let keys: Vec<String> = (0..sessions).map(session_key).collect();
    let cache = SessionCache::new(sessions, Keep::default());
    cache.reset(true);

    let before = snapshot();
    for (index, key) in keys.iter().enumerate() {
        cache.insert(key, &opened_record(index), cache.ticket());
    }
    let filled = snapshot();
    if cache.len() != sessions {
        return Err(format!("{} of {sessions} sessions cached", cache.len()));
    }
    let per_session = |after: usize, before: usize| (after - before) as f64 / sessions as f64;
    println!("{sessions} cached sessions (Keep::default(), 664-byte access token), per session:");
    println!(
        "  {:7.1} live bytes asked for\n  {:7.1} bytes of glibc chunks\n  {:7.2} live allocations",
        per_session(filled.bytes, before.bytes),
        per_session(filled.chunk_bytes, before.chunk_bytes),
        per_session(filled.allocations, before.allocations),
    );

    let hits_from = snapshot();
    let tokens = hits(&cache, &keys)?;
    let hits_to = snapshot();
    if tokens != 664 * HIT_ROUNDS {
        return Err("a hit gave another access token".into());
    }
    println!(
        "a cache hit: {:.2} allocations",
        (hits_to.made - hits_from.made) as f64 / HIT_ROUNDS as f64
    );
    Ok(())
}

/// `HIT_ROUNDS` cache hits, each dropped as a Check drops it; the access tokens' length in all.
/// Never inlined, so callgrind counts a hit's instructions by its name.
#[inline(never)]
fn hits(cache: &SessionCache, keys: &[String]) -> Result<usize, String> {
    let mut tokens = 0;
    for round in 0..HIT_ROUNDS {
        let hit = cache
            .get(&keys[round % keys.len()])
            .ok_or("a cached session missed")?;
        tokens += hit.record.access_token.len();
    }
    Ok(tokens)
}
