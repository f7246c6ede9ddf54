//! Time, injected: every expiry decision reads the clock through [`Clock`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
///
/// Token expiry is absolute wall time (`expires_at`), so the clock is a [`SystemTime`] source.
/// The default is [`SystemClock`]; tests use [`ManualClock`] or [`TokioClock`] (which follows
/// tokio's pausable time, so a test with `start_paused = true` never really sleeps).
pub trait Clock: Any + Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// A shared clock, the form the builders take.
pub type SharedClock = Arc<dyn Clock>;

/// Whether `clock` is the [`SystemClock`] (which a cache then reads directly, without the call
/// through the trait object).
pub(crate) fn is_system(clock: &dyn Clock) -> bool {
    (clock as &dyn Any).is::<SystemClock>()
}

/// The operating system's wall clock.
///
/// On Linux it is read coarsely (`CLOCK_REALTIME_COARSE`: the time of the last timer tick, a
/// few milliseconds' resolution, read in a few nanoseconds without a system call), since every
/// decision it serves has minutes of margin and a cache hit reads it on every call. It stays a
/// wall clock: unlike a monotonic one it does not stop while the machine sleeps, so a laptop
/// resumed after a night is not handed a token that died in the meantime. Elsewhere it is
/// `SystemTime::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place in the project that reads the system clock.
    #[allow(clippy::disallowed_methods)]
    #[inline]
    fn now(&self) -> SystemTime {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
                return SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
            }
        }
        SystemTime::now()
    }
}

impl SystemClock {
    /// [`now`](Clock::now) in nanoseconds since the Unix epoch (see [`nanos`]), read without
    /// building a `SystemTime`: what a cache hit compares.
    #[allow(clippy::disallowed_methods)]
    #[inline]
    pub(crate) fn now_nanos(self) -> u64 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
                return secs.saturating_mul(1_000_000_000).saturating_add(nanos);
            }
        }
        nanos(SystemTime::now())
    }
}

/// `t` in nanoseconds since the Unix epoch: 0 before it, `u64::MAX` from the year 2554 on (so
/// an order between times is kept wherever it matters to a token's life).
pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The default clock as a [`SharedClock`].
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// How far one clock is from another: ahead or behind.
///
/// What [`Response::provider_offset`](crate::http::Response::provider_offset) reads from a
/// provider's `Date` header, and what the emulator's clock is set to in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockOffset {
    /// The other clock is this far ahead.
    Ahead(Duration),
    /// The other clock is this far behind.
    Behind(Duration),
    /// No offset.
    #[default]
    None,
}

impl ClockOffset {
    /// The offset of a clock reading `theirs` when this one reads `ours`.
    pub fn between(ours: SystemTime, theirs: SystemTime) -> Self {
        match theirs.duration_since(ours) {
            Ok(ahead) if ahead.is_zero() => Self::None,
            Ok(ahead) => Self::Ahead(ahead),
            Err(behind) => Self::Behind(behind.duration()),
        }
    }

    /// How far apart the clocks are, either way.
    pub fn magnitude(self) -> Duration {
        match self {
            Self::Ahead(d) | Self::Behind(d) => d,
            Self::None => Duration::ZERO,
        }
    }

    /// `now` on this clock, read on the other: shifted by the offset.
    pub fn apply(self, now: SystemTime) -> SystemTime {
        match self {
            Self::Ahead(d) => now + d,
            Self::Behind(d) => now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
            Self::None => now,
        }
    }

    /// `at`, a time on the other clock, read on this one: [`apply`](Self::apply) undone.
    pub fn undo(self, at: SystemTime) -> SystemTime {
        match self {
            Self::Ahead(d) => at.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
            Self::Behind(d) => at + d,
            Self::None => at,
        }
    }
}

impl From<Duration> for ClockOffset {
    /// A plain `Duration` is an offset ahead.
    fn from(d: Duration) -> Self {
        Self::Ahead(d)
    }
}

/// A clock that moves only when told to. For tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Wall time that advances with tokio's clock: `start + (tokio::time::Instant::now() - origin)`.
///
/// Under `#[tokio::test(start_paused = true)]` tokio's clock jumps forward whenever every task
/// is waiting on a timer, so tests of hour-long token lifetimes finish at once and timers and
/// expiry stay in step.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: SystemTime,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now, advancing with tokio's time.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.start + self.origin.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now(), t0 + Duration::from_secs(5));
    }

    /// The coarse system clock is the wall clock, within its resolution (a tick of a few ms).
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn the_system_clock_is_the_wall_clock() {
        for _ in 0..100 {
            let before = SystemTime::now();
            let ours = SystemClock.now();
            let after = SystemTime::now();
            let tick = Duration::from_millis(50);
            assert!(
                ours + tick >= before && ours <= after + tick,
                "{ours:?} vs {before:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let c = TokioClock::new(t0);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now(), t0 + Duration::from_secs(3600));
    }
}
