//! The request bodies in flight, against a memory budget.

use std::sync::Arc;

/// The bytes of request bodies in flight, against a budget
/// (`MCP_BODY_BUDGET_MIB`): a parsed JSON body costs several times its size,
/// so without a bound a few large bodies at once can take all the memory.
pub struct BodyBudget {
    permits: Arc<rocket::tokio::sync::Semaphore>,
    total_kib: u32,
}

/// A body's share of the budget, returned when dropped.
pub struct BodyReservation(rocket::tokio::sync::OwnedSemaphorePermit);

/// Bodies at least this large hand their memory back to the system when
/// done: glibc keeps freed heap pages otherwise, and a burst of large
/// bodies left ~300 MiB resident for good (the fault suite measures it).
const TRIM_AFTER_KIB: u32 = 1024;

impl Drop for BodyReservation {
    fn drop(&mut self) {
        if self.0.num_permits() >= TRIM_AFTER_KIB as usize {
            trim_heap();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

impl BodyBudget {
    pub fn new(mib: u32) -> BodyBudget {
        let total_kib = mib.max(1).saturating_mul(1024);
        BodyBudget {
            permits: Arc::new(rocket::tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Reserves `bytes`, waiting until they fit (for a transport that
    /// reads one message at a time and can hold the next back).
    /// `None` only if the budget were closed, which it never is.
    pub async fn reserve(&self, bytes: u64) -> Option<BodyReservation> {
        Arc::clone(&self.permits)
            .acquire_many_owned(self.kib(bytes))
            .await
            .ok()
            .map(BodyReservation)
    }

    fn kib(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }

    /// Reserves `bytes` now, or `None` when they do not fit. A body larger
    /// than the whole budget takes all of it (the body limit bounds it).
    pub fn try_reserve(&self, bytes: u64) -> Option<BodyReservation> {
        Arc::clone(&self.permits)
            .try_acquire_many_owned(self.kib(bytes))
            .ok()
            .map(BodyReservation)
    }
}
