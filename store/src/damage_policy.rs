//! Ground layer: the vocabulary of the gateway's reaction to damage ([`DamagePolicy`]).
//!
//! A setting of [`crate::StoreConfig`], so it sits with the configuration; what the reaction
//! does with a check's findings ([`DamagePolicy::reaction`]) is the maintenance layer's
//! (`policy.rs`).

use serde::Deserialize;

/// One reaction to damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDamage {
    /// Repair it with the board to itself (the store's `repair`); other processes let go and
    /// reopen after.
    Repair,
    /// Report it and stop: the check gives [`crate::Error::Corrupt`].
    Stop,
    /// Report it and go on (what upstream's gateway did).
    Continue,
}

/// The gateway's reaction per kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DamagePolicy {
    /// Damage confined to indexes (default: [`OnDamage::Repair`]).
    pub index_only: OnDamage,
    /// Any other finding (default: [`OnDamage::Stop`]).
    pub other: OnDamage,
}

impl Default for DamagePolicy {
    fn default() -> Self {
        DamagePolicy {
            index_only: OnDamage::Repair,
            other: OnDamage::Stop,
        }
    }
}
