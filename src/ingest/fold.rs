//! The fold: moves each written series' tail of raw points into the hourly
//! and daily rollups once its hours are over (`ROLLUP_FOLD_AFTER_SECS` after
//! an hour ends, so late samples still land in the tail for free).
//!
//! Answers never wait for it: until a tail is folded, readers summarise it
//! from the raw points, exactly. It only bounds what they read. Each process
//! folds what it wrote (kept in memory); at start and every hour it also
//! looks for tails that nobody folded (a process that ended first).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;

use crate::db::{Db, DbError};
use crate::store::{catalog, rollups, statistics};

/// Series remembered between folds; past it, the next fold looks for
/// unfolded tails in the catalog instead (bounded memory whatever is written).
const MAX_DIRTY: usize = 100_000;
/// A fold runs this long after a write woke it, so a burst folds once.
const SETTLE: Duration = Duration::from_secs(1);
/// And at least this often, as hours end.
const TICK: Duration = Duration::from_secs(30);
/// The look for tails nobody folded: soon after start, then hourly.
const FIRST_SCAN: Duration = Duration::from_secs(5);
const SCAN_EVERY: Duration = Duration::from_secs(3600);
/// Series found by one look.
const SCAN_LIMIT: i64 = 10_000;
/// One fold transaction moves at most this much time of at most this many
/// series, so writers of the stripe wait briefly.
const STEP: TimeDelta = TimeDelta::days(1);
const GROUP: usize = 500;
const HOUR: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Clone, Copy)]
struct Tail {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// When a write last added to it.
    written: Instant,
}

impl Tail {
    /// Nobody wrote to it for `after`: its newest hour folds too, as
    /// complete as the hours before it (a stopped series, an import).
    fn quiet(&self, after: Duration) -> bool {
        self.written.elapsed() >= after
    }
}

#[derive(Default)]
struct Dirty {
    series: HashMap<String, Tail>,
    /// Some were not remembered: look in the catalog.
    overflowed: bool,
}

/// What one fold did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Series moved forward, counted once per step of a day.
    pub moves: usize,
    /// Stripes skipped because writers held them; tried again next time.
    pub busy: usize,
}

pub struct Folder {
    db: Db,
    after: Duration,
    dirty: Mutex<Dirty>,
    wake: tokio::sync::Notify,
}

impl Folder {
    /// A folder that runs in the background; call from within the runtime.
    pub fn start(db: Db, after: Duration) -> Arc<Folder> {
        let folder = Folder::idle(db, after);
        let running = Arc::clone(&folder);
        tokio::spawn(async move { running.run().await });
        folder
    }

    /// A folder that folds only when asked ([`Folder::fold`]).
    pub fn idle(db: Db, after: Duration) -> Arc<Folder> {
        Arc::new(Folder {
            // The task timeout: a first fold after a large backfill reads it all.
            db: db.watched().0,
            after,
            dirty: Mutex::new(Dirty::default()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// A write committed points of these series, each in [first, last].
    pub fn written<'a>(
        &self,
        spans: impl IntoIterator<Item = (&'a str, DateTime<Utc>, DateTime<Utc>)>,
    ) {
        self.remember(spans);
        self.wake.notify_one();
    }

    fn remember<'a>(
        &self,
        spans: impl IntoIterator<Item = (&'a str, DateTime<Utc>, DateTime<Utc>)>,
    ) {
        let mut dirty = self.dirty.lock();
        let written = Instant::now();
        for (series, first, last) in spans {
            let room = dirty.series.len() < MAX_DIRTY;
            if let Some(t) = dirty.series.get_mut(series) {
                t.first = t.first.min(first);
                t.last = t.last.max(last);
                t.written = written;
            } else if room {
                let tail = Tail {
                    first,
                    last,
                    written,
                };
                dirty.series.insert(series.to_owned(), tail);
            } else {
                dirty.overflowed = true;
            }
        }
    }

    /// Every tail remembered is complete (an import that ended): the next
    /// fold takes their newest hours too, without waiting for `after`.
    pub fn finished(&self) {
        if let Some(quiet) = Instant::now().checked_sub(self.after) {
            for tail in self.dirty.lock().series.values_mut() {
                tail.written = tail.written.min(quiet);
            }
        }
    }

    /// The hour up to which tails fold now.
    pub fn limit(&self) -> DateTime<Utc> {
        let now = Utc::now() - TimeDelta::from_std(self.after).unwrap_or(TimeDelta::zero());
        let s = now.timestamp().div_euclid(rollups::RESOLUTION) * rollups::RESOLUTION;
        DateTime::from_timestamp(s, 0).unwrap_or(now)
    }

    async fn run(self: Arc<Self>) {
        let mut scanned: Option<Instant> = None;
        // The first look for unfolded tails comes soon after start, once
        // start-up's own work is done.
        let mut wait = FIRST_SCAN;
        loop {
            tokio::select! {
                _ = self.wake.notified() => tokio::time::sleep(SETTLE).await,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = TICK;
            if scanned.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
                self.dirty.lock().overflowed = true;
                scanned = Some(Instant::now());
            }
            if let Err(e) = self.fold(self.limit(), false).await {
                // Readers are exact regardless; the next tick tries again.
                log::warn!("rollup fold failed, retrying later: {e}");
            }
            if let Err(e) = self.settle_labels().await {
                log::warn!("settling the label index failed, retrying later: {e}");
            }
            // After the fold: the hours it wrote change the rollups' too.
            match self.db.run(|conn| statistics::refresh(conn, 4)).await {
                Ok(analysed) if !analysed.is_empty() => {
                    log::info!("planner statistics refreshed: {}", analysed.join(", "));
                }
                Ok(_) => {}
                Err(e) => log::warn!("refreshing planner statistics failed: {e}"),
            }
        }
    }

    /// Folds every remembered tail (and, after an overflow or a restart,
    /// those found in the catalog) up to `until`, an hour boundary. With
    /// `wait`, waits for each stripe's writers; without, waits a moment
    /// (`rollups::fold`) and skips the stripes still busy until next time.
    pub async fn fold(&self, until: DateTime<Utc>, wait: bool) -> Result<Folded, DbError> {
        self.take_invalidations().await?;
        let (mut due, scan) = {
            let mut dirty = self.dirty.lock();
            let mut due = BTreeMap::new();
            dirty.series.retain(|name, tail| {
                // A series folds no further than the hour of its newest point
                // (mcp_fold): points written within that hour wait for a
                // later one, and cost no fold meanwhile; once nobody has
                // written to it for `after`, that hour folds too.
                let quiet = tail.quiet(self.after);
                let newest = floor_hour(tail.last);
                let reach = until.min(if quiet { newest + HOUR } else { newest });
                if tail.first >= reach {
                    // Kept only while time alone will make it foldable.
                    return !quiet || tail.last >= until;
                }
                due.insert(name.clone(), *tail);
                if reach == until && tail.last >= until {
                    // Points past `until` fold once it moves on, by time alone.
                    tail.first = until;
                    true
                } else if !quiet {
                    // And the newest hour once the series is quiet.
                    tail.first = reach;
                    true
                } else {
                    false
                }
            });
            (due, std::mem::take(&mut dirty.overflowed))
        };
        if scan {
            let found = self
                .db
                .run(move |conn| rollups::unfolded(conn, until, SCAN_LIMIT))
                .await?;
            for (name, first) in found {
                // Found, not written here: its newest hour stays (mcp_fold).
                due.entry(name).or_insert(Tail {
                    first,
                    last: first,
                    written: Instant::now(),
                });
            }
        }
        if due.is_empty() {
            return Ok(Folded::default());
        }
        let names: Vec<String> = due.keys().cloned().collect();
        let stripes = self
            .db
            .run(move |conn| {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                rollups::stripes(conn, &names)
            })
            .await?;
        let mut groups: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for (stripe, name) in stripes {
            groups.entry(stripe).or_default().push(name);
        }
        let mut done = Folded::default();
        for (stripe, names) in groups {
            for group in names.chunks(GROUP) {
                match self.fold_group(stripe, group, &due, until, wait).await {
                    Ok(Some(n)) => done.moves += n,
                    Ok(None) => {
                        done.busy += 1;
                        self.again(group, &due);
                    }
                    // Or fenced (a newer schema): nothing folds until upgraded.
                    Err(e) if e.is_transient() || matches!(e, DbError::Ahead(_)) => {
                        self.again(group, &due);
                        return Err(e);
                    }
                    // Some series' data cannot be summarised (sums past
                    // 1.7e308): fold the others one by one.
                    Err(_) => {
                        for name in group {
                            let one = std::slice::from_ref(name);
                            match self.fold_group(stripe, one, &due, until, wait).await {
                                Ok(Some(n)) => done.moves += n,
                                Ok(None) => self.again(one, &due),
                                Err(e) if e.is_transient() => self.again(one, &due),
                                // Left as a tail, read from the points, where
                                // the same sums fail: until written again.
                                Err(e) => {
                                    log::warn!("the rollups of series {name} cannot be folded: {e}")
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(done)
    }

    /// Remembers the series that SQL writers touched (the invalidation
    /// log), from the first hour touched: their next fold recomputes those
    /// hours. Until it does, readers summarise them from the raw points.
    async fn take_invalidations(&self) -> Result<usize, DbError> {
        let taken = self
            .db
            .run(|conn| rollups::invalidated(conn, SCAN_LIMIT))
            .await?;
        if taken.is_empty() {
            return Ok(0);
        }
        let until = self.limit();
        // The newest point is not logged: mcp_fold finds how far each goes.
        self.remember(
            taken
                .iter()
                .map(|(name, since)| (name.as_str(), *since, until.max(*since))),
        );
        Ok(taken.len())
    }

    /// Moves the label index's changes (new series, changed tags) into its
    /// counts. Readers add the changes left, so this only keeps them few.
    pub async fn settle_labels(&self) -> Result<i64, DbError> {
        self.db.run(catalog::settle_labels).await
    }

    /// One group of one stripe, a step of at most [`STEP`] at a time from
    /// its earliest unfolded point, skipping time without points; `None`
    /// when the stripe was busy.
    async fn fold_group(
        &self,
        stripe: i32,
        group: &[String],
        due: &BTreeMap<String, Tail>,
        until: DateTime<Utc>,
        wait: bool,
    ) -> Result<Option<usize>, DbError> {
        let tails = || group.iter().filter_map(|n| due.get(n).map(|t| (n, t)));
        let whole: Vec<String> = tails()
            .filter(|(_, t)| t.quiet(self.after))
            .map(|(n, _)| n.clone())
            .collect();
        let mut moved = 0;
        let mut from = tails().map(|(_, t)| t.first).min().unwrap_or(until);
        loop {
            let step = (floor_hour(from) + STEP).min(until);
            let (names, whole) = (group.to_vec(), whole.clone());
            let done = self
                .db
                .run(move |conn| {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let whole: Vec<&str> = whole.iter().map(String::as_str).collect();
                    rollups::fold(conn, stripe, (&names, &whole), step, wait)
                })
                .await?;
            let Some((n, next)) = done else {
                return Ok(None);
            };
            moved += usize::try_from(n).unwrap_or(0);
            match next {
                // The next step starts at the next point (or ends the fold).
                Some(next) if step < until => from = next.min(until),
                _ if step < until => from = until,
                _ => return Ok(Some(moved)),
            }
        }
    }

    /// Remembers series whose fold did not happen, for the next one.
    fn again(&self, group: &[String], due: &BTreeMap<String, Tail>) {
        let mut dirty = self.dirty.lock();
        for name in group {
            if let Some(tail) = due.get(name) {
                let t = dirty.series.entry(name.clone()).or_insert(*tail);
                t.first = t.first.min(tail.first);
                t.last = t.last.max(tail.last);
                t.written = t.written.max(tail.written);
            }
        }
    }
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp().div_euclid(rollups::RESOLUTION) * rollups::RESOLUTION;
    DateTime::from_timestamp(s, 0).unwrap_or(t)
}
