//! The protected resource's side of fencing with Redlock.
//!
//! Each instance numbers its grants of a key with its own strictly increasing counter. Counters
//! of different instances are unrelated: one may be at 10 000 while another is at 7. So a lock's
//! tokens only say something when compared *instance by instance*, and the largest of them is
//! not a global fence: a paused former holder whose quorum included the instance at 10 000 would
//! beat a newer holder whose quorum did not, and the newer holder's writes would be refused while
//! the stale ones went through.
//!
//! What does work: any two quorums of the same N instances share at least one instance, and on
//! that instance the later holder's token is larger (it was granted after the earlier holder's
//! copy expired or was released). So the resource remembers, per instance, the newest token it
//! has accepted, and refuses a writer whose tokens are older on any instance they have in
//! common. It also refuses token sets smaller than a quorum, which could miss the overlap.
//!
//! Unlike the lease, this check assumes nothing about clocks or pauses: only that any two quorums
//! overlap and that no instance's counter ever goes back.

use crate::redlock::Token;
use std::collections::BTreeMap;

/// The newest accepted token per instance, kept by the protected resource next to its data.
///
/// The check and the write it guards must be one atomic step on the resource (a transaction,
/// a compare-and-set), and this state must be as durable as the data it protects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    instances: usize,
    newest: BTreeMap<usize, u64>,
}

impl Fence {
    /// A fence for locks taken on `instances` Redlock instances.
    pub fn new(instances: usize) -> Self {
        Self {
            instances,
            newest: BTreeMap::new(),
        }
    }

    /// Whether a holder presenting `tokens` may write: they come from at least a quorum of
    /// distinct instances, and none is older than the newest token accepted from its instance.
    /// Equal tokens pass: the same holder writing again.
    pub fn check(&self, tokens: &[Token]) -> bool {
        let Some(by_instance) = self.by_instance(tokens) else {
            return false;
        };
        by_instance.iter().all(|(instance, token)| {
            self.newest
                .get(instance)
                .is_none_or(|newest| token >= newest)
        })
    }

    /// [`Fence::check`], and on success remembers `tokens` as the newest of their instances.
    pub fn admit(&mut self, tokens: &[Token]) -> bool {
        if !self.check(tokens) {
            return false;
        }
        for token in tokens {
            self.newest.insert(token.instance, token.token);
        }
        true
    }

    /// The newest token accepted from each instance.
    pub fn newest(&self) -> &BTreeMap<usize, u64> {
        &self.newest
    }

    /// `tokens` by instance, or `None` when they name an unknown instance, name one twice, or
    /// cover fewer than a quorum.
    fn by_instance(&self, tokens: &[Token]) -> Option<BTreeMap<usize, u64>> {
        let mut by_instance = BTreeMap::new();
        for token in tokens {
            let fresh = by_instance.insert(token.instance, token.token).is_none();
            if token.instance >= self.instances || !fresh {
                return None;
            }
        }
        (by_instance.len() > self.instances / 2).then_some(by_instance)
    }
}
