//! Scope-set keys. The map is keyed by the normalized (sorted, deduplicated) scope list, and looked
//! up with the caller's `&[&str]` as it is, through `Borrow<dyn ScopeSet>`: both sides hash and
//! compare as *sets*, so a hit builds no key and allocates nothing.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A set of scopes, seen through its (possibly unsorted, possibly repeating) elements.
pub(super) trait ScopeSet {
    fn count(&self) -> usize;
    fn scope(&self, i: usize) -> &str;
}

/// The caller's scopes as given.
pub(super) struct Query<'a, 'b>(pub(super) &'a [&'b str]);

impl ScopeSet for Query<'_, '_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn scope(&self, i: usize) -> &str {
        self.0[i]
    }
}

/// A normalized scope set: sorted, deduplicated.
#[derive(Clone)]
pub(super) struct ScopeKey {
    pub(super) scopes: Arc<[String]>,
    /// Space-joined, for logs and messages.
    pub(super) display: Arc<str>,
}

impl ScopeKey {
    pub(super) fn new(scopes: &[&str]) -> Self {
        let mut sorted: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let display = sorted.join(" ").into();
        Self {
            scopes: sorted.into(),
            display,
        }
    }
}

impl ScopeSet for ScopeKey {
    fn count(&self) -> usize {
        self.scopes.len()
    }
    fn scope(&self, i: usize) -> &str {
        &self.scopes[i]
    }
}

/// Order- and duplicate-insensitive hash: min and max of the elements' hashes.
impl Hash for dyn ScopeSet + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for i in 0..self.count() {
            let h = scope_hash(self.scope(i));
            lo = lo.min(h);
            hi = hi.max(h);
        }
        state.write_u64(lo ^ hi.rotate_left(31));
    }
}

/// A fast, fixed-key hash of one scope (FxHash-style, 8 bytes at a time). Scopes come from the
/// application, not from an attacker, so HashDoS resistance is not needed here.
fn scope_hash(scope: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = scope.len() as u64;
    let mut chunks = scope.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    // Final avalanche (splitmix64) so the low bits the map uses depend on every byte.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Set equality.
impl PartialEq for dyn ScopeSet + '_ {
    fn eq(&self, other: &Self) -> bool {
        fn all_in(a: &(dyn ScopeSet + '_), b: &(dyn ScopeSet + '_)) -> bool {
            (0..a.count()).all(|i| (0..b.count()).any(|j| a.scope(i) == b.scope(j)))
        }
        all_in(self, other) && all_in(other, self)
    }
}

impl Eq for dyn ScopeSet + '_ {}

impl Hash for ScopeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn ScopeSet).hash(state);
    }
}

impl PartialEq for ScopeKey {
    fn eq(&self, other: &Self) -> bool {
        self.scopes == other.scopes
    }
}

impl Eq for ScopeKey {}

impl<'a> Borrow<dyn ScopeSet + 'a> for ScopeKey {
    fn borrow(&self) -> &(dyn ScopeSet + 'a) {
        self
    }
}

/// The scope-set hash is already well mixed: pass it through instead of hashing it again.
#[derive(Default)]
pub(super) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
