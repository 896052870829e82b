//! Properties that must hold for every input, not only the examples: the
//! ingress host matcher and budget accounting under any interleaving.

use std::sync::Arc;
use std::time::Duration;

use defender::budget::{Budget, Quota};
use defender::config;
use defender::engine::Engine;
use defender::policy::ingress_hosts::{HostProblem, host_problem};
use defender::request::Operation;
use defender::synthetic::Synthetic;
use defender::view::MemoryView;
use jiff::Timestamp;
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

/// A hostname of `count` labels; the last one is never a number (a numeric
/// last label makes the name an IPv4 address).
fn hostname(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<String>> {
    (prop::collection::vec(label(), count.start - 1..count.end - 1), "[a-z]([a-z0-9-]{0,8}[a-z0-9])?")
        .prop_map(|(mut labels, last)| {
            labels.push(last);
            labels
        })
}

proptest! {
    /// Whatever the text, the matcher answers without panicking, and a host
    /// holding a `*` is never accepted unless it is exactly `*.` + a domain of
    /// two or more labels with wildcards allowed.
    #[test]
    fn a_wildcard_is_accepted_only_as_a_leading_label_over_a_real_domain(host in "\\PC{0,40}", allow: bool) {
        let problem = host_problem(Some(&host), allow);
        let trimmed = host.trim().trim_end_matches('.');
        if trimmed.contains('*') && problem.is_none() {
            let suffix = trimmed.strip_prefix("*.").expect("accepted wildcards start with *.");
            prop_assert!(allow);
            prop_assert!(!suffix.contains('*'));
            prop_assert!(suffix.split('.').filter(|l| !l.is_empty()).count() >= 2);
        }
        if trimmed.is_empty() {
            prop_assert_eq!(problem, Some(HostProblem::Missing));
        }
    }

    /// Concrete hosts are always accepted; `*.` over them only when allowed,
    /// and `*.` over a single label never.
    #[test]
    fn concrete_hosts_pass_and_wildcards_follow_the_setting(labels in hostname(1..5), allow: bool) {
        let host = labels.join(".");
        prop_assert_eq!(host_problem(Some(&host), allow), None);
        let wildcard = format!("*.{host}");
        let expected = match (labels.len(), allow) {
            (1, _) => Some(HostProblem::TooBroad),
            (_, true) => None,
            (_, false) => Some(HostProblem::Wildcard),
        };
        prop_assert_eq!(host_problem(Some(&wildcard), allow), expected);
        prop_assert_eq!(host_problem(Some(&format!("*.*.{host}")), allow).is_some(), true);
    }

    /// An IP address is never a hostname, whatever the spelling and the
    /// wildcard setting.
    #[test]
    fn ip_addresses_are_never_accepted(v4: std::net::Ipv4Addr, v6: std::net::Ipv6Addr, allow: bool) {
        for address in [v4.to_string(), v6.to_string(), format!("[{v6}]"), u32::from(v4).to_string()] {
            prop_assert_eq!(host_problem(Some(&address), allow), Some(HostProblem::IpAddress), "{}", address);
        }
    }

    /// However spends, refunds and time steps interleave, no window of the
    /// budget's length ever holds more than `limit` spends.
    #[test]
    fn no_window_ever_holds_more_than_the_limit(
        limit in 1u32..6,
        window_seconds in 1i64..120,
        steps in prop::collection::vec((0i64..40, 0usize..3, any::<bool>()), 1..200),
    ) {
        let budget = Budget::new(Quota { limit, window: Duration::from_secs(window_seconds as u64) });
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let mut now = 0i64;
        let mut accepted: Vec<i64> = Vec::new();
        for (index, (advance, key, refund)) in steps.into_iter().enumerate() {
            now += advance;
            let at = start + jiff::SignedDuration::from_secs(now);
            let object = format!("object-{index}");
            if futures::executor::block_on(budget.spend(&format!("key-{key}"), &object, at)).is_ok() && key == 0 {
                if refund {
                    futures::executor::block_on(budget.give_back("key-0", &object, at));
                } else {
                    accepted.push(now);
                }
            }
        }
        for (i, first) in accepted.iter().enumerate() {
            let in_window = accepted[i..].iter().take_while(|t| **t < first + window_seconds).count();
            prop_assert!(in_window <= limit as usize, "{in_window} spends within {window_seconds}s of {first}");
        }
    }
}

/// M threads deleting namespaces at once through one engine, whose budget
/// allows N (3 per 10 minutes by default): exactly N are allowed.
#[test]
fn concurrent_namespace_deletes_are_allowed_exactly_budget_times() {
    let engine = Arc::new(Engine::new(config::load_embedded().unwrap()));
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let threads: Vec<_> = (0..64)
        .map(|thread| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let mut synthetic = Synthetic::new(Operation::Delete);
                synthetic.old_object = Some(serde_json::json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": format!("preview-{thread}"), "uid": format!("uid-{thread}"),
                                 "labels": {"defender.io/skip-delete-confirmation": "true"}}
                }));
                let request = synthetic.build().unwrap();
                let view = MemoryView::default();
                engine.decide(&request, &engine.context(now, &view)).allowed()
            })
        })
        .collect();
    let allowed = threads.into_iter().map(|t| t.join().unwrap()).filter(|allowed| *allowed).count();
    assert_eq!(allowed, 3);
}
