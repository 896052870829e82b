//! What is wrong with one hostname an Ingress or a route claims.
//!
//! Shared by every place a host can come from (Ingress rules and TLS hosts,
//! Gateway API route hostnames, controller annotations), so a host is judged
//! the same wherever it is written.

use std::fmt;
use std::net::Ipv6Addr;

/// What is wrong with one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostProblem {
    /// Missing or empty: the rule matches every host.
    Missing,
    /// `*`: matches every host.
    MatchesEverything,
    /// `*.com`: a wildcard over a single-label suffix.
    TooBroad,
    /// `*.example.com` while wildcards are not allowed.
    Wildcard,
    /// A `*` anywhere but a leading `*.` label.
    MisplacedWildcard,
    /// `10.0.0.1`, `::1`: an address, not a name.
    IpAddress,
    /// A regular expression (only controller annotations take one): no
    /// bound on the hosts it matches.
    Pattern,
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostProblem::Missing => "matches every host",
            HostProblem::MatchesEverything => "matches every host",
            HostProblem::TooBroad => "is a wildcard over a whole top-level domain",
            HostProblem::Wildcard => "is a wildcard, and wildcard hosts are not allowed here",
            HostProblem::MisplacedWildcard => "has a '*' that is not a leading '*.' label",
            HostProblem::IpAddress => {
                "is an IP address, and IP addresses are not hostnames: use a DNS name that resolves to it"
            }
            HostProblem::Pattern => "is a regular expression, which can match any host",
        })
    }
}

/// Judges one host. `None` and `""` are a missing host.
pub fn host_problem(host: Option<&str>, allow_wildcard_subdomains: bool) -> Option<HostProblem> {
    let host = host.map(str::trim).unwrap_or_default().trim_end_matches('.');
    if host.is_empty() {
        return Some(HostProblem::Missing);
    }
    if host == "*" {
        return Some(HostProblem::MatchesEverything);
    }
    let wildcard_suffix = host.strip_prefix("*.");
    if is_ip_address(wildcard_suffix.unwrap_or(host)) {
        return Some(HostProblem::IpAddress);
    }
    let Some(suffix) = wildcard_suffix else {
        return host.contains('*').then_some(HostProblem::MisplacedWildcard);
    };
    if suffix.contains('*') {
        return Some(HostProblem::MisplacedWildcard);
    }
    let labels = suffix.split('.').filter(|label| !label.is_empty()).count();
    if labels < 2 {
        Some(HostProblem::TooBroad)
    } else if !allow_wildcard_subdomains {
        Some(HostProblem::Wildcard)
    } else {
        None
    }
}

/// Whether `name` is an IP address rather than a hostname: an IPv6 literal
/// (bare, bracketed or with a zone), or any name whose last label is a
/// number. Browsers and most HTTP stacks (the WHATWG URL standard) read the
/// latter as IPv4 in all its spellings (`10.0.0.1`, `10.1`, `0x7f.1`,
/// `167772161`), and no top-level domain is numeric.
pub fn is_ip_address(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    let unbracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    let unzoned = unbracketed.split_once('%').map_or(unbracketed, |(address, _zone)| address);
    if unzoned.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    name.rsplit('.').next().is_some_and(is_number)
}

/// A decimal or `0x` hexadecimal number, as an IPv4 part may be written.
fn is_number(label: &str) -> bool {
    let hex = label.strip_prefix("0x").or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_problem_table() {
        use HostProblem::*;
        let cases = [
            (None, false, Some(Missing)),
            (Some(""), false, Some(Missing)),
            (Some("  "), false, Some(Missing)),
            (Some("*"), true, Some(MatchesEverything)),
            (Some("*."), true, Some(MatchesEverything)),
            (Some("*.com"), true, Some(TooBroad)),
            (Some("*.com."), true, Some(TooBroad)),
            (Some("*.example.com"), false, Some(Wildcard)),
            (Some("*.example.com"), true, None),
            (Some("*.*.example.com"), true, Some(MisplacedWildcard)),
            (Some("foo.*.example.com"), true, Some(MisplacedWildcard)),
            (Some("app.example.com"), false, None),
            (Some("localhost"), false, None),
            (Some("10.0.0.1"), true, Some(IpAddress)),
            (Some("10.0.0.1."), true, Some(IpAddress)),
            (Some("*.0.0.1"), true, Some(IpAddress)),
            (Some("::1"), true, Some(IpAddress)),
            (Some("2001:db8::8a2e:370:7334"), true, Some(IpAddress)),
        ];
        for (host, allow, expected) in cases {
            assert_eq!(host_problem(host, allow), expected, "{host:?} allow={allow}");
        }
    }

    #[test]
    fn ip_addresses_in_every_spelling_are_not_hostnames() {
        for address in [
            "192.168.1.10",
            "0.0.0.0",
            "255.255.255.255",
            "10.1",
            "0x7f.0.0.1",
            "127.0.0.0x1",
            "167772161",
            "010.001.001.001",
            "::",
            "::1",
            "[::1]",
            "fe80::1%eth0",
            "[fe80::1%25eth0]",
            "::ffff:192.0.2.1",
            "2001:DB8::1",
        ] {
            assert!(is_ip_address(address), "{address}");
        }
        for name in
            ["app.example.com", "localhost", "1password.com", "web-01.example", "0xcafe.dev", "a1.b2.c3"]
        {
            assert!(!is_ip_address(name), "{name}");
        }
    }
}
