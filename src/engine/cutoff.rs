//! A review's deadline, as the engine sees it: once a review is cut off its
//! answer has gone out without it, so it must not spend a budget after.

use std::sync::atomic::{AtomicU8, Ordering};

const RUNNING: u8 = 0;
const SPENDING: u8 = 1;
const CUT_OFF: u8 = 2;

/// Shared by whoever waits for a review and the engine evaluating it. Exactly
/// one of the two wins: the waiter cuts the review off before the engine
/// starts spending, or the engine starts spending and the waiter must wait
/// for its decision.
#[derive(Debug, Default)]
pub struct Cutoff(AtomicU8);

impl Cutoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// The waiter gives up on the review. True if the engine had not started
    /// spending (nothing will be spent now, so another answer may go out);
    /// false if it has, and its decision is the one to send.
    pub fn cut_off(&self) -> bool {
        self.0.compare_exchange(RUNNING, CUT_OFF, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The engine is about to spend. False if the review was cut off first.
    pub fn begin_spending(&self) -> bool {
        self.0.compare_exchange(RUNNING, SPENDING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn is_cut_off(&self) -> bool {
        self.0.load(Ordering::Acquire) == CUT_OFF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_cut_off_first_never_spends() {
        let cutoff = Cutoff::new();
        assert!(cutoff.cut_off());
        assert!(!cutoff.begin_spending());
        assert!(cutoff.is_cut_off());
    }

    #[test]
    fn a_review_already_spending_cannot_be_cut_off() {
        let cutoff = Cutoff::new();
        assert!(cutoff.begin_spending());
        assert!(!cutoff.cut_off());
        assert!(!cutoff.is_cut_off());
    }
}
