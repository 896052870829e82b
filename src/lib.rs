//! Defender: a Kubernetes validating admission webhook that stops dangerous
//! changes (core namespace deletion, namespace deletion sprees, unguarded
//! deletes of Ingresses, Services, Secrets, ConfigMaps and Pods, wildcard
//! Ingress hosts) before they are stored.
//!
//! The [`engine`] judges one [`request`] against a [`policy::PolicySet`]; the
//! [`server`], the `defender test` harness and the CLI are adapters around it.
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod budget;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod custom_resources;
pub mod decode;
pub mod engine;
pub mod harness;
pub mod logging;
pub mod manifests;
pub mod paths;
pub mod period;
pub mod policy;
pub mod protected_objects;
pub mod request;
pub mod routing;
pub mod selector;
pub mod server;
pub mod settings;
pub mod synthetic;
pub mod view;
pub mod webhooks;
pub mod yaml;

#[cfg(test)]
mod testing;
