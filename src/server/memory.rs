//! Caps on what requests may hold at once: bytes of request bodies buffered
//! (with what parsing them builds), and reviews being judged. A request that would pass a cap is shed with 503
//! at once rather than queued, so memory stays bounded however many clients
//! send large bodies slowly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How much requests may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes of request bodies buffered across all requests, judged or still
    /// arriving, and of the trees parsing them builds.
    pub max_buffered_bytes: usize,
    /// Reviews parsed and being judged at once.
    pub max_reviews_in_flight: usize,
}

impl Default for MemoryLimits {
    /// Sized for the Deployment's 256 MiB memory limit. Measured with a debug
    /// build (tests/server_limits.rs): about 43 MiB at rest, and at most
    /// 183 MiB while 40 clients held large unfinished bodies and then the
    /// largest legal reviews arrived six at a time; the rest is room for the
    /// cluster view of a large cluster. 64 reviews judged at once is far more
    /// than one replica ever needs.
    fn default() -> Self {
        Self { max_buffered_bytes: 128 << 20, max_reviews_in_flight: 64 }
    }
}

/// Bodies up to this size are ordinary reviews (nearly every review an API
/// server sends is a few KiB). An eighth of [`MemoryLimits::max_buffered_bytes`]
/// is reserved for them: larger bodies, finished or still arriving, may use
/// only the rest. So however many clients hold larger bodies open, ordinary
/// reviews still have room. Bodies this small can still fill the reserve, but
/// only by many connections at once (some 128 to 256 for the default cap,
/// each sending its body slowly until the request timeout cuts it off).
pub const SMALL_BODY_BYTES: usize = 64 << 10;

/// Why a request was shed, as the `reason` label of `defender_requests_shed_total` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shed {
    /// Buffering the body would pass `--max-buffered-bytes`.
    BufferedBytes,
    /// Judging it would pass `--max-reviews-in-flight`.
    ReviewsInFlight,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::BufferedBytes => "buffered_bytes",
            Shed::ReviewsInFlight => "reviews_in_flight",
        }
    }
}

/// Counts what every request holds against the limits.
#[derive(Debug)]
pub struct Holdings {
    limits: MemoryLimits,
    buffered: AtomicUsize,
    judging: AtomicUsize,
}

impl Holdings {
    pub fn new(limits: MemoryLimits) -> Arc<Self> {
        Arc::new(Self { limits, buffered: AtomicUsize::new(0), judging: AtomicUsize::new(0) })
    }

    /// The most requests with bodies over [`SMALL_BODY_BYTES`] may hold, together or alone.
    pub fn largest_request(&self) -> usize {
        self.limits.max_buffered_bytes - self.limits.max_buffered_bytes / 8
    }

    pub fn limits(&self) -> MemoryLimits {
        self.limits
    }

    /// An empty reservation of buffer bytes, to grow as a body arrives.
    pub fn buffer(self: &Arc<Self>) -> BufferReservation {
        BufferReservation { holdings: Arc::clone(self), bytes: 0, body_bytes: 0 }
    }

    /// A slot for judging one review, held until the guard is dropped.
    pub fn judge(self: &Arc<Self>) -> Result<JudgingSlot, Shed> {
        let max = self.limits.max_reviews_in_flight;
        self.judging
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| Shed::ReviewsInFlight)?;
        Ok(JudgingSlot(Arc::clone(self)))
    }

    /// Bytes buffered now, across all requests.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// What the buffered total may reach for a request whose body has `body_bytes`.
    fn cap_for(&self, body_bytes: usize) -> usize {
        if body_bytes > SMALL_BODY_BYTES { self.largest_request() } else { self.limits.max_buffered_bytes }
    }

    /// Adds `bytes` to the buffered total if the total stays within the cap
    /// for a body of `body_bytes`.
    fn try_buffer(&self, bytes: usize, body_bytes: usize) -> bool {
        let cap = self.cap_for(body_bytes);
        self.buffered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= cap)
            })
            .is_ok()
    }
}

/// Buffer bytes one request holds; given back when dropped.
#[derive(Debug)]
pub struct BufferReservation {
    holdings: Arc<Holdings>,
    bytes: usize,
    /// The size of the body as far as it is known (its length so far, or
    /// the length it declared), which decides the cap it is held to.
    body_bytes: usize,
}

impl BufferReservation {
    /// Records that the body has at least `bytes`. A body too large to be
    /// held even with nothing else buffered is shed at once.
    pub fn body_is_at_least(&mut self, bytes: usize) -> Result<(), Shed> {
        self.body_bytes = self.body_bytes.max(bytes);
        if self.body_bytes > self.holdings.cap_for(self.body_bytes) {
            return Err(Shed::BufferedBytes);
        }
        Ok(())
    }

    /// Grows the reservation to at least `bytes`, or sheds the request.
    pub fn reserve_up_to(&mut self, bytes: usize) -> Result<(), Shed> {
        if bytes <= self.bytes {
            return Ok(());
        }
        if !self.holdings.try_buffer(bytes - self.bytes, self.body_bytes) {
            return Err(Shed::BufferedBytes);
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Gives back all but `bytes` of the reservation.
    pub fn release_down_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.holdings.buffered.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for BufferReservation {
    fn drop(&mut self) {
        self.holdings.buffered.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// One review being judged; frees its slot when dropped.
#[derive(Debug)]
pub struct JudgingSlot(Arc<Holdings>);

impl Drop for JudgingSlot {
    fn drop(&mut self) {
        self.0.judging.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn holdings() -> Arc<Holdings> {
        Holdings::new(MemoryLimits { max_buffered_bytes: 16 * MIB, max_reviews_in_flight: 2 })
    }

    #[test]
    fn reservations_are_given_back_when_dropped() {
        let holdings = holdings();
        let mut first = holdings.buffer();
        first.reserve_up_to(10 * MIB).unwrap();
        first.reserve_up_to(4 * MIB).unwrap();
        assert_eq!(first.bytes(), 10 * MIB);
        assert_eq!(holdings.buffered_bytes(), 10 * MIB);
        drop(first);
        assert_eq!(holdings.buffered_bytes(), 0);
    }

    #[test]
    fn bodies_over_the_small_size_leave_an_eighth_free_for_small_ones() {
        let holdings = holdings();
        // Many mid-size bodies together reach seven eighths (14 MiB) and no further.
        let mut mid_size = Vec::new();
        for _ in 0..14 {
            let mut reservation = holdings.buffer();
            reservation.body_is_at_least(SMALL_BODY_BYTES + 1).unwrap();
            reservation.reserve_up_to(MIB).unwrap();
            mid_size.push(reservation);
        }
        let mut one_more = holdings.buffer();
        one_more.body_is_at_least(SMALL_BODY_BYTES + 1).unwrap();
        assert_eq!(one_more.reserve_up_to(1), Err(Shed::BufferedBytes));

        // Small bodies, and the trees parsing them builds, use the eighth left.
        let mut small = holdings.buffer();
        small.body_is_at_least(SMALL_BODY_BYTES).unwrap();
        small.reserve_up_to(2 * MIB).unwrap();
        // Nothing at all is left now.
        assert_eq!(holdings.buffer().reserve_up_to(1), Err(Shed::BufferedBytes));
    }

    #[test]
    fn a_body_that_could_never_fit_is_shed_before_it_holds_anything() {
        let holdings = holdings();
        let mut reservation = holdings.buffer();
        reservation.body_is_at_least(14 * MIB).unwrap();
        assert_eq!(reservation.body_is_at_least(14 * MIB + 1), Err(Shed::BufferedBytes));
        assert_eq!(holdings.buffered_bytes(), 0);
    }

    #[test]
    fn judging_slots_are_capped_and_freed() {
        let holdings = holdings();
        let (first, _second) = (holdings.judge().unwrap(), holdings.judge().unwrap());
        assert_eq!(holdings.judge().unwrap_err(), Shed::ReviewsInFlight);
        drop(first);
        assert!(holdings.judge().is_ok());
    }
}
