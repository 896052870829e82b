//! Who serves each host and path: an index kept in step with the stores of
//! every routing kind, so a lookup costs what it returns, not what the
//! cluster holds. A review asks once per host and path it adds.

use std::collections::{BTreeMap, HashMap};

use crate::view::{HostPath, Route, RouteKind};

#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    by_host: HashMap<String, BTreeMap<String, Servers>>,
}

/// The objects serving one host and path, by kind, namespace and name: the
/// order messages list them in. Each name maps to whether the view keeps
/// only part of that object's routes.
#[derive(Debug, Clone, Default)]
struct Servers {
    by_kind: BTreeMap<RouteKind, Owners>,
}

#[derive(Debug, Clone, Default)]
struct Owners {
    count: usize,
    by_namespace: BTreeMap<String, BTreeMap<String, bool>>,
}

/// What [`RouteIndex::serving`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Serving {
    /// The first ones, in order.
    pub first: Vec<Route>,
    /// How many there are in all.
    pub total: usize,
}

/// One object's routes, as the index records them.
pub struct Owner<'a> {
    pub kind: RouteKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub routes: &'a [HostPath],
    /// The object serves more routes than the view keeps.
    pub truncated: bool,
}

impl RouteIndex {
    pub fn add(&mut self, owner: &Owner) {
        for route in owner.routes {
            let paths = self.by_host.entry(route.host.clone()).or_default();
            let owners = paths.entry(route.path.clone()).or_default().by_kind.entry(owner.kind).or_default();
            let names = owners.by_namespace.entry(owner.namespace.to_owned()).or_default();
            if names.insert(owner.name.to_owned(), owner.truncated).is_none() {
                owners.count += 1;
            }
        }
    }

    pub fn remove(&mut self, owner: &Owner) {
        for route in owner.routes {
            let Some(paths) = self.by_host.get_mut(&route.host) else { continue };
            let Some(servers) = paths.get_mut(&route.path) else { continue };
            let Some(owners) = servers.by_kind.get_mut(&owner.kind) else { continue };
            let Some(names) = owners.by_namespace.get_mut(owner.namespace) else { continue };
            if names.remove(owner.name).is_some() {
                owners.count -= 1;
            }
            // Emptied maps go, so the index holds only what is served.
            if names.is_empty() {
                owners.by_namespace.remove(owner.namespace);
            }
            if owners.by_namespace.is_empty() {
                servers.by_kind.remove(&owner.kind);
            }
            if servers.by_kind.is_empty() {
                paths.remove(&route.path);
            }
            if paths.is_empty() {
                self.by_host.remove(&route.host);
            }
        }
    }

    /// Every route serving `host` (already normalized), sorted.
    pub fn to_host(&self, host: &str) -> Vec<Route> {
        let mut routes: Vec<Route> = self
            .by_host
            .get(host)
            .into_iter()
            .flatten()
            .flat_map(|(path, servers)| servers.routes(path, None))
            .collect();
        routes.sort();
        routes
    }

    /// The objects serving exactly `route` outside namespace `outside`: the
    /// first `limit` of them (by kind, namespace and name) and how many in all.
    pub fn serving(&self, route: &HostPath, outside: &str, limit: usize) -> Serving {
        let Some(servers) = self.by_host.get(&route.host).and_then(|paths| paths.get(&route.path)) else {
            return Serving::default();
        };
        let total = servers
            .by_kind
            .values()
            .map(|owners| owners.count - owners.by_namespace.get(outside).map_or(0, BTreeMap::len))
            .sum();
        let first = servers.routes(&route.path, Some(outside)).take(limit).collect();
        Serving { first, total }
    }

    /// How many host and path pairs are indexed, for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_host.values().map(BTreeMap::len).sum()
    }
}

impl Servers {
    /// The objects serving `path`, skipping namespace `outside` (one map entry per kind).
    fn routes<'a>(&'a self, path: &'a str, outside: Option<&'a str>) -> impl Iterator<Item = Route> + 'a {
        self.by_kind.iter().flat_map(move |(kind, owners)| {
            owners
                .by_namespace
                .iter()
                .filter(move |(namespace, _)| Some(namespace.as_str()) != outside)
                .flat_map(move |(namespace, names)| {
                    names.iter().map(move |(name, truncated)| Route {
                        kind: *kind,
                        namespace: namespace.clone(),
                        name: name.clone(),
                        path: path.to_owned(),
                        truncated: *truncated,
                    })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner<'a>(kind: RouteKind, namespace: &'a str, name: &'a str, routes: &'a [HostPath]) -> Owner<'a> {
        Owner { kind, namespace, name, routes, truncated: false }
    }

    fn names(serving: &Serving) -> Vec<String> {
        serving.first.iter().map(|route| format!("{} {}", route.describe(), route.path)).collect()
    }

    #[test]
    fn serving_lists_other_namespaces_in_order_and_counts_them_all() {
        let mut index = RouteIndex::default();
        let shop = [HostPath::new("shop.example.com", None)];
        for namespace in ["c", "a", "own", "b"] {
            index.add(&owner(RouteKind::HttpRoute, namespace, "r", &shop));
            index.add(&owner(RouteKind::Ingress, namespace, "web", &shop));
        }
        let found = index.serving(&shop[0], "own", 4);
        assert_eq!(found.total, 6);
        assert_eq!(
            names(&found),
            ["ingress \"a/web\" /", "ingress \"b/web\" /", "ingress \"c/web\" /", "httproute \"a/r\" /"]
        );
        assert_eq!(index.serving(&shop[0], "own", 0), Serving { first: Vec::new(), total: 6 });
        assert_eq!(index.serving(&HostPath::new("shop.example.com", Some("/x")), "own", 5).total, 0);
    }

    #[test]
    fn removing_an_object_forgets_its_routes_and_leaves_no_empty_entries() {
        let mut index = RouteIndex::default();
        let routes = [HostPath::new("a.example.com", None), HostPath::new("a.example.com", Some("/v1"))];
        index.add(&owner(RouteKind::Ingress, "a", "web", &routes));
        index.add(&owner(RouteKind::Ingress, "b", "web", &routes[..1]));
        assert_eq!(index.to_host("a.example.com").len(), 3);
        index.remove(&owner(RouteKind::Ingress, "a", "web", &routes));
        assert_eq!(index.serving(&routes[0], "x", 5).total, 1);
        assert_eq!(index.len(), 1);
        index.remove(&owner(RouteKind::Ingress, "b", "web", &routes[..1]));
        assert!(index.by_host.is_empty());
        // Removing what is not there changes nothing.
        index.remove(&owner(RouteKind::Ingress, "b", "web", &routes[..1]));
        assert!(index.to_host("a.example.com").is_empty());
    }

    #[test]
    fn adding_an_object_twice_counts_it_once() {
        let mut index = RouteIndex::default();
        let routes = [HostPath::new("a.example.com", None)];
        index.add(&owner(RouteKind::Ingress, "a", "web", &routes));
        index.add(&owner(RouteKind::Ingress, "a", "web", &routes));
        assert_eq!(index.serving(&routes[0], "x", 5).total, 1);
    }
}
