//! Hosts that ingress controllers take from an Ingress's annotations.
//!
//! These add hostnames beside `spec.rules[].host` (aliases served exactly like
//! the rule hosts), so they must follow the same rules. Only annotations whose
//! controller documents them as adding hosts are listed.

use crate::policy::hostname::{HostProblem, host_problem};

/// How a controller reads an annotation's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// Hostnames separated by commas or whitespace, `*.` wildcards allowed.
    Hostnames,
    /// nginx `server_name` entries: hostnames, `.example.com` (the domain
    /// and every subdomain) and `~regex`.
    NginxServerNames,
    /// One regular expression.
    Regex,
}

/// An annotation that adds hosts, and how its value is read.
struct HostAnnotation {
    key: &'static str,
    syntax: Syntax,
}

const HOST_ANNOTATIONS: &[HostAnnotation] = &[
    // ingress-nginx: aliases added to the server's `server_name`.
    HostAnnotation { key: "nginx.ingress.kubernetes.io/server-alias", syntax: Syntax::NginxServerNames },
    // HAProxy Ingress, under its current and its original annotation prefix.
    HostAnnotation { key: "haproxy-ingress.github.io/server-alias", syntax: Syntax::Hostnames },
    HostAnnotation { key: "ingress.kubernetes.io/server-alias", syntax: Syntax::Hostnames },
    HostAnnotation { key: "haproxy-ingress.github.io/server-alias-regex", syntax: Syntax::Regex },
    HostAnnotation { key: "ingress.kubernetes.io/server-alias-regex", syntax: Syntax::Regex },
    // Kong Ingress Controller: extra hosts for every route of the Ingress.
    HostAnnotation { key: "konghq.com/host-aliases", syntax: Syntax::Hostnames },
];

/// One host an annotation adds that breaks the host rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationHost<'a> {
    pub annotation: &'static str,
    pub host: &'a str,
    pub problem: HostProblem,
}

/// Every offending host the annotations add, in annotation order.
pub fn annotation_problems<'a>(
    annotations: impl Fn(&str) -> Option<&'a str>,
    allow_wildcard_subdomains: bool,
) -> Vec<AnnotationHost<'a>> {
    let mut problems = Vec::new();
    for annotation in HOST_ANNOTATIONS {
        let Some(value) = annotations(annotation.key) else { continue };
        let hosts = match annotation.syntax {
            Syntax::Regex => {
                let regex = value.trim();
                if !regex.is_empty() {
                    problems.push(AnnotationHost {
                        annotation: annotation.key,
                        host: regex,
                        problem: HostProblem::Pattern,
                    });
                }
                continue;
            }
            Syntax::Hostnames | Syntax::NginxServerNames => split_hosts(value),
        };
        for host in hosts {
            let problem = match annotation.syntax {
                Syntax::NginxServerNames => nginx_server_name_problem(host, allow_wildcard_subdomains),
                _ => host_problem(Some(host), allow_wildcard_subdomains),
            };
            // An empty entry adds no host.
            if let Some(problem) = problem.filter(|p| *p != HostProblem::Missing) {
                problems.push(AnnotationHost { annotation: annotation.key, host, problem });
            }
        }
    }
    problems
}

/// Entries of a host list; commas or whitespace separate them (a controller
/// splitting on commas still writes space-separated names into its config,
/// where each is a host of its own).
fn split_hosts(value: &str) -> impl Iterator<Item = &str> {
    value.split(|c: char| c == ',' || c.is_whitespace()).filter(|host| !host.is_empty())
}

/// An nginx `server_name` entry, judged by what it matches.
fn nginx_server_name_problem(name: &str, allow_wildcard_subdomains: bool) -> Option<HostProblem> {
    if name.starts_with('~') {
        return Some(HostProblem::Pattern);
    }
    match name.strip_prefix('.') {
        // `.example.com` is `example.com` plus `*.example.com`.
        Some(domain) => host_problem(Some(&format!("*.{domain}")), allow_wildcard_subdomains),
        None => host_problem(Some(name), allow_wildcard_subdomains),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use HostProblem::*;

    fn judge(annotations: &[(&str, &str)], allow: bool) -> Vec<(&'static str, String, HostProblem)> {
        let map: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        annotation_problems(|key| map.get(key).copied(), allow)
            .into_iter()
            .map(|found| (found.annotation, found.host.to_owned(), found.problem))
            .collect()
    }

    const NGINX: &str = "nginx.ingress.kubernetes.io/server-alias";

    #[test]
    fn server_alias_entries_are_split_on_commas_and_whitespace_and_judged_each() {
        let found = judge(&[(NGINX, "shop.example.com, *.example.com  10.0.0.1,,*")], false);
        assert_eq!(
            found,
            [
                (NGINX, "*.example.com".to_owned(), Wildcard),
                (NGINX, "10.0.0.1".to_owned(), IpAddress),
                (NGINX, "*".to_owned(), MatchesEverything),
            ]
        );
        assert_eq!(judge(&[(NGINX, "shop.example.com,www.shop.example.com")], false), []);
        assert_eq!(judge(&[(NGINX, " , ")], false), [], "empty entries add no host");
    }

    #[test]
    fn nginx_server_name_forms_are_judged_by_what_they_match() {
        assert_eq!(judge(&[(NGINX, ".example.com")], false), [(NGINX, ".example.com".to_owned(), Wildcard)]);
        assert_eq!(judge(&[(NGINX, ".example.com")], true), []);
        assert_eq!(judge(&[(NGINX, ".com")], true), [(NGINX, ".com".to_owned(), TooBroad)]);
        assert_eq!(judge(&[(NGINX, "~^(.+)$")], true), [(NGINX, "~^(.+)$".to_owned(), Pattern)]);
        assert_eq!(
            judge(&[(NGINX, "www.example.*")], true),
            [(NGINX, "www.example.*".to_owned(), MisplacedWildcard)]
        );
    }

    #[test]
    fn every_controllers_annotations_are_read() {
        let found = judge(
            &[
                ("haproxy-ingress.github.io/server-alias", "*.example.com"),
                ("ingress.kubernetes.io/server-alias", "::1"),
                ("haproxy-ingress.github.io/server-alias-regex", " .* "),
                ("ingress.kubernetes.io/server-alias-regex", ""),
                ("konghq.com/host-aliases", "kong.example.com, *.com"),
                ("example.com/unrelated", "*"),
            ],
            false,
        );
        assert_eq!(
            found,
            [
                ("haproxy-ingress.github.io/server-alias", "*.example.com".to_owned(), Wildcard),
                ("ingress.kubernetes.io/server-alias", "::1".to_owned(), IpAddress),
                ("haproxy-ingress.github.io/server-alias-regex", ".*".to_owned(), Pattern),
                ("konghq.com/host-aliases", "*.com".to_owned(), TooBroad),
            ]
        );
    }
}
