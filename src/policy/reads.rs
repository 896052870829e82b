//! The fields of a request's objects that Defender reads, as dotted paths
//! from the object's top (`metadata.labels`, `spec.replicas`).
//!
//! The AdmissionReview parse keeps only part of each object, and checks
//! against this table when it is compiled: a policy that starts reading a
//! field the parse skips fails the build, not a review in production. A
//! reader that starts reading a new field adds it here.

/// Who reads what, policies and the request facts they share.
pub const OBJECT_READS: &[(&str, &[&str])] = &[
    // Request: the name, identity, labels and annotations of the object
    // judged; whether it is on its way out and held by finalizers; and the
    // owner references whose change is a deletion by the garbage collector.
    (
        "request",
        &[
            "metadata.name",
            "metadata.uid",
            "metadata.labels",
            "metadata.annotations",
            "metadata.deletionTimestamp",
            "metadata.finalizers",
            "metadata.ownerReferences",
        ],
    ),
    ("core-namespaces", &["metadata.name", "metadata.labels"]),
    (
        "namespace-deletion",
        &["metadata.name", "metadata.labels", "metadata.annotations", "metadata.deletionTimestamp"],
    ),
    ("deletion-guard", &["metadata.name", "metadata.uid", "metadata.labels"]),
    ("delete-protection", &["metadata.uid", "metadata.labels", "spec.replicas"]),
    // A CustomResourceDefinition's group, names, versions and scope.
    ("custom-resources", &["metadata.name", "spec.group", "spec.names", "spec.versions", "spec.scope"]),
    ("cascading-protection", &["metadata.name", "metadata.labels"]),
    ("in-use-guard", &["metadata.name", "metadata.labels"]),
    // An Ingress's rules, TLS hosts and catch-all backends; a route's hostnames.
    (
        "ingress-hosts",
        &[
            "metadata.annotations",
            "spec.rules",
            "spec.tls",
            "spec.defaultBackend",
            "spec.backend",
            "spec.hostnames",
        ],
    ),
    ("duplicate-hosts", &["spec.rules", "spec.hostnames"]),
];
