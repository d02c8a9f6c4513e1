//! A bounded in-memory cache of decoded records for the read path, kept coherent
//! by versions. Every slot remembers the highest version known for its record; a
//! loaded record is kept only if it is at least that new, so a read that raced a
//! write can never put the older state back. This instance's writes mark their
//! record stale as they commit; a follower reads the outbox (which every
//! mutation already writes) and does the same for writes made elsewhere — other
//! instances on the same PostgreSQL database, or sync — within one poll interval.
//!
//! Entries also expire after [`TIME_TO_LIVE`], which bounds the damage of the one
//! race versions cannot see: a stale mark evicted by capacity pressure while an
//! older read is still in flight. Writes never read through the cache.

use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::Op;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::journal::outbox;

/// Longest an entry is served from memory.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(60);
/// Outbox rows the follower reads per poll.
const FOLLOW_BATCH: u64 = 1_000;

/// A record with a version that grows on every change.
pub trait Versioned {
    fn version(&self) -> i64;
}

#[derive(Debug)]
enum Slot<T> {
    Live(Arc<T>),
    /// Some version at least this new exists; anything older must not be cached.
    Stale(i64),
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        match self {
            Slot::Live(r) => Slot::Live(Arc::clone(r)),
            Slot::Stale(v) => Slot::Stale(*v),
        }
    }
}

impl<T: Versioned> Slot<T> {
    fn version(&self) -> i64 {
        match self {
            Slot::Live(r) => r.version(),
            Slot::Stale(v) => *v,
        }
    }
}

/// Cache of one record type (`record_type` as written to the outbox).
pub struct RecordCache<T> {
    record_type: &'static str,
    slots: Option<moka::sync::Cache<String, Slot<T>>>,
}

impl<T> std::fmt::Debug for RecordCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache")
            .field("record_type", &self.record_type)
            .field("enabled", &self.slots.is_some())
            .finish()
    }
}

impl<T: Versioned + Send + Sync + 'static> RecordCache<T> {
    /// A cache of at most `capacity` records; 0 disables it.
    pub fn new(record_type: &'static str, capacity: u64) -> RecordCache<T> {
        let slots = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(TIME_TO_LIVE)
                .build()
        });
        RecordCache { record_type, slots }
    }

    /// The cached record, if it is known to be current.
    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        match self.slots.as_ref()?.get(id)? {
            Slot::Live(record) => Some(record),
            Slot::Stale(_) => None,
        }
    }

    /// Keeps a record just read from the database, unless a newer version is known.
    pub fn offer(&self, id: &str, record: Arc<T>) {
        let Some(slots) = &self.slots else { return };
        slots
            .entry_by_ref(id)
            .and_compute_with(|current| match current {
                Some(slot) if slot.value().version() > record.version() => Op::Nop,
                Some(slot)
                    if matches!(slot.value(), Slot::Live(_))
                        && slot.value().version() == record.version() =>
                {
                    Op::Nop
                }
                _ => Op::Put(Slot::Live(record)),
            });
    }

    /// Drops whatever is held for `id`: a change that leaves its version as
    /// it was (a derived field written again) committed. A read in flight
    /// may still put the previous state back, for at most [`TIME_TO_LIVE`].
    pub fn forget(&self, id: &str) {
        if let Some(slots) = &self.slots {
            slots.invalidate(id);
        }
    }

    /// Records that version `version` of `id` exists (a write committed).
    pub fn stale(&self, id: &str, version: i64) {
        let Some(slots) = &self.slots else { return };
        slots
            .entry_by_ref(id)
            .and_compute_with(|current| match current {
                Some(slot) if slot.value().version() >= version => Op::Nop,
                _ => Op::Put(Slot::Stale(version)),
            });
    }

    /// Follows the outbox from its current head, marking every change stale; runs
    /// until the task is dropped. Errors are logged and retried on the next tick.
    pub fn follow(
        self: Arc<Self>,
        db: DatabaseConnection,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if self.slots.is_none() {
                return;
            }
            let mut cursor = head(&db).await.unwrap_or(0);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.catch_up(&db, cursor).await {
                    Ok(next) => cursor = next,
                    Err(e) => {
                        tracing::warn!(error = %e, "cache follower could not read the outbox")
                    }
                }
            }
        })
    }

    /// Applies the outbox after `cursor`; returns the new cursor.
    pub async fn catch_up(
        &self,
        db: &DatabaseConnection,
        mut cursor: i64,
    ) -> Result<i64, sea_orm::DbErr> {
        loop {
            let rows: Vec<(i64, String, String, i64)> = outbox::Entity::find()
                .select_only()
                .columns([
                    outbox::Column::Seq,
                    outbox::Column::RecordType,
                    outbox::Column::RecordId,
                    outbox::Column::Version,
                ])
                .filter(outbox::Column::Seq.gt(cursor))
                .order_by_asc(outbox::Column::Seq)
                .limit(FOLLOW_BATCH)
                .into_tuple()
                .all(db)
                .await?;
            let full = rows.len() as u64 == FOLLOW_BATCH;
            for (seq, record_type, id, version) in rows {
                if record_type == self.record_type {
                    self.stale(&id, version);
                }
                cursor = seq;
            }
            if !full {
                return Ok(cursor);
            }
        }
    }
}

async fn head(db: &DatabaseConnection) -> Result<i64, sea_orm::DbErr> {
    let last: Option<i64> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Seq)
        .order_by_desc(outbox::Column::Seq)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(last.unwrap_or(0))
}

/// Values derived from the database, kept by the head they were read at (a
/// version that every write able to change them moves: the journal's outbox
/// head, the ledger's chain head). Each key is computed once per head, by the
/// first caller to ask; callers asking for the same key meanwhile wait for
/// that computation, and different keys are computed side by side. A newer
/// head drops everything kept; a caller still at an older head computes for
/// itself. A computation may read at a later head than it is kept under,
/// never an earlier one.
///
/// A computation runs on a task of its own: a caller that gives up on it (its
/// deadline passed, its client went away) does not take the work with it, so
/// the callers after it find the value computed or still being computed
/// instead of starting over, each to be given up on again.
pub struct KeptAtHead<K, V> {
    kept: Arc<std::sync::Mutex<At<K, V>>>,
    /// Keys kept at one head at most; past it the head starts afresh.
    max_keys: usize,
}

type Cell<V> = Arc<tokio::sync::OnceCell<Arc<V>>>;

struct At<K, V> {
    head: i64,
    values: std::collections::HashMap<K, Cell<V>>,
}

impl<K: std::hash::Hash + Eq, V: Send + Sync + 'static> KeptAtHead<K, V> {
    pub fn new(max_keys: usize) -> KeptAtHead<K, V> {
        KeptAtHead {
            kept: Arc::new(std::sync::Mutex::new(At {
                head: i64::MIN,
                values: std::collections::HashMap::new(),
            })),
            max_keys,
        }
    }

    /// The value of `key` at `head`: kept, being computed by another caller
    /// (then waited for), or computed now by `compute`.
    pub async fn get_or_try_init<E, F, Fut>(
        &self,
        head: i64,
        key: K,
        compute: F,
    ) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<V, E>> + Send + 'static,
        E: From<tokio::task::JoinError> + Send + 'static,
    {
        let cell: Cell<V> = {
            // Nothing in here can panic, so a poisoned lock holds sound data.
            let mut at = self
                .kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let full = at.values.len() >= self.max_keys && !at.values.contains_key(&key);
            if head > at.head || full {
                at.head = head;
                at.values.clear();
            }
            if head == at.head {
                Arc::clone(at.values.entry(key).or_default())
            } else {
                Cell::default()
            }
        };
        tokio::spawn(async move {
            cell.get_or_try_init(|| async { compute().await.map(Arc::new) })
                .await
                .cloned()
        })
        .await?
    }
}

impl<K, V> Clone for KeptAtHead<K, V> {
    fn clone(&self) -> KeptAtHead<K, V> {
        KeptAtHead {
            kept: Arc::clone(&self.kept),
            max_keys: self.max_keys,
        }
    }
}

impl<K, V> std::fmt::Debug for KeptAtHead<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptAtHead")
    }
}

/// What a summary was computed from: the unit, the first and last year, the
/// day (units move with the calendar) and the version of the data it read.
pub type SummaryKey = (String, i32, i32, chrono::NaiveDate, i64);

/// Summaries already computed, by what they were computed from. A service
/// keys them by a version that every write able to change a figure moves in
/// its own transaction (the ledger's chain head, the journal's outbox head),
/// read in the same snapshot as the figures; an entry can then never be
/// stale, because a write makes a new key. Old keys age out.
pub struct SummaryCache<V>(moka::sync::Cache<SummaryKey, Arc<V>>);

impl<V: Send + Sync + 'static> SummaryCache<V> {
    pub fn new() -> SummaryCache<V> {
        SummaryCache(
            moka::sync::Cache::builder()
                .max_capacity(1_024)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        )
    }

    pub fn get(&self, key: &SummaryKey) -> Option<Arc<V>> {
        self.0.get(key)
    }

    pub fn insert(&self, key: SummaryKey, value: Arc<V>) {
        self.0.insert(key, value);
    }
}

impl<V: Send + Sync + 'static> Default for SummaryCache<V> {
    fn default() -> SummaryCache<V> {
        SummaryCache::new()
    }
}

impl<V> Clone for SummaryCache<V> {
    fn clone(&self) -> SummaryCache<V> {
        SummaryCache(self.0.clone())
    }
}

impl<V> std::fmt::Debug for SummaryCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SummaryCache({} entries)", self.0.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Failed;
    impl From<tokio::task::JoinError> for Failed {
        fn from(_: tokio::task::JoinError) -> Failed {
            Failed
        }
    }

    /// A computation that counts its runs in `computed` and yields `v`.
    fn counting(
        computed: &Arc<std::sync::atomic::AtomicI64>,
    ) -> impl Fn(i64) -> std::pin::Pin<Box<dyn Future<Output = Result<i64, Failed>> + Send>> {
        let computed = Arc::clone(computed);
        move |v: i64| {
            let computed = Arc::clone(&computed);
            Box::pin(async move {
                computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(v)
            })
        }
    }

    type Computation = std::pin::Pin<Box<dyn Future<Output = Result<i64, Failed>> + Send>>;

    async fn ask(
        kept: &KeptAtHead<&'static str, i64>,
        head: i64,
        key: &'static str,
        computation: Computation,
    ) -> Result<i64, Failed> {
        kept.get_or_try_init(head, key, || computation)
            .await
            .map(|v| *v)
    }

    #[tokio::test]
    async fn a_value_is_computed_once_per_head_and_never_kept_from_an_older_one() {
        let kept = KeptAtHead::<&str, i64>::new(8);
        let computed = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let compute = counting(&computed);
        // Asked together at one head: one computation.
        let (a, b) = tokio::join!(
            ask(&kept, 5, "k", compute(1)),
            ask(&kept, 5, "k", compute(2)),
        );
        assert_eq!((a, b), (Ok(1), Ok(1)));
        assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A newer head computes afresh; an older one does not replace it.
        assert_eq!(ask(&kept, 6, "k", compute(3)).await, Ok(3));
        assert_eq!(ask(&kept, 5, "k", compute(4)).await, Ok(4));
        assert_eq!(ask(&kept, 6, "k", compute(5)).await, Ok(3));
        // A failed computation is not kept.
        assert_eq!(
            ask(&kept, 6, "e", Box::pin(async { Err(Failed) })).await,
            Err(Failed)
        );
        assert_eq!(ask(&kept, 6, "e", compute(7)).await, Ok(7));
    }

    #[tokio::test]
    async fn a_full_head_keeps_what_it_has_until_a_new_key_comes() {
        let kept = KeptAtHead::<&str, i64>::new(1);
        let computed = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let compute = counting(&computed);
        assert_eq!(ask(&kept, 1, "a", compute(1)).await, Ok(1));
        assert_eq!(ask(&kept, 1, "a", compute(2)).await, Ok(1));
        assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(ask(&kept, 1, "b", compute(3)).await, Ok(3));
        assert_eq!(ask(&kept, 1, "a", compute(4)).await, Ok(4));
    }

    #[tokio::test]
    async fn a_computation_given_up_on_still_finishes_for_the_next_caller() {
        let kept = KeptAtHead::<&str, i64>::new(8);
        let started = Arc::new(tokio::sync::Notify::new());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let computation: Computation = {
            let started = Arc::clone(&started);
            Box::pin(async move {
                started.notify_one();
                let _ = released.await;
                Ok(1)
            })
        };
        // The first caller gives up once its computation has started.
        tokio::select! {
            _ = ask(&kept, 1, "k", computation) => panic!("finished before it was let go"),
            _ = started.notified() => {}
        }
        let _ = release.send(());
        let computed = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let compute = counting(&computed);
        assert_eq!(ask(&kept, 1, "k", compute(2)).await, Ok(1));
        assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[derive(Debug, PartialEq)]
    struct Rec(i64);
    impl Versioned for Rec {
        fn version(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn an_older_read_never_replaces_a_newer_write() {
        let cache = RecordCache::<Rec>::new("r", 10);
        cache.offer("a", Arc::new(Rec(1)));
        assert_eq!(cache.get("a").as_deref(), Some(&Rec(1)));
        cache.stale("a", 2);
        assert_eq!(cache.get("a"), None, "stale after a write");
        cache.offer("a", Arc::new(Rec(1)));
        assert_eq!(
            cache.get("a"),
            None,
            "a read that raced the write is refused"
        );
        cache.offer("a", Arc::new(Rec(2)));
        assert_eq!(cache.get("a").as_deref(), Some(&Rec(2)));
        cache.stale("a", 2);
        assert_eq!(
            cache.get("a").as_deref(),
            Some(&Rec(2)),
            "marking a known version changes nothing"
        );
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let cache = RecordCache::<Rec>::new("r", 0);
        cache.offer("a", Arc::new(Rec(1)));
        assert_eq!(cache.get("a"), None);
    }
}
