//! The ValidatingWebhookConfiguration that sends Defender what its policies
//! judge, built from their [`crate::routing::Need`]s.
//!
//! The API server only calls a webhook for the requests its rules match: a
//! policy asked to guard a kind no rule names never sees a request for it.
//! [`configuration`] builds the webhook configuration from what each policy
//! states it must be sent, and [`unrouted`] finds what a given configuration
//! leaves out.

mod cel;
mod configuration;
mod unrouted;

pub use configuration::{Options, configuration, parse};
pub use unrouted::unrouted;

#[cfg(test)]
mod tests;
