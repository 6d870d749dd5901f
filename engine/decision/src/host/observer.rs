//! The decision observer: its installation ([`SlotHost::set_observer`]) and the hand-over
//! of each final decision to it, its panics caught.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::watchdog::panic_message;
use super::{Decision, DecisionObserver, DecisionRecord, SlotHost};
use crate::features::FeatureMatrix;

/// Holder of the observer (an `ArcSwapOption` needs a sized value).
pub(super) struct ObserverCell(DecisionObserver);

impl SlotHost {
    /// Installs (`Some`) or removes (`None`) the decision observer: from the next decision
    /// on, every decision of this host is handed to it once its answer is final (after any
    /// fallback), with its key and input. Without an observer a decision pays one relaxed
    /// atomic load. The engine keeps nothing for it: recording, sampling and storage are
    /// the observer's (the node's telemetry).
    pub fn set_observer(&self, observer: Option<DecisionObserver>) {
        let on = observer.is_some();
        self.observer
            .store(observer.map(|o| Arc::new(ObserverCell(o))));
        self.observed.store(on, Ordering::Relaxed);
    }

    #[cold]
    pub(super) fn notify(&self, key: u64, input: &FeatureMatrix, decision: &Decision) {
        let Some(cell) = self.observer.load_full() else {
            return;
        };
        let record = DecisionRecord {
            slot: self.slot,
            key,
            input,
            decision,
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| (cell.0)(&record))) {
            tracing::warn!(slot = %self.slot, msg = %panic_message(p), "decision observer panicked");
        }
    }
}
