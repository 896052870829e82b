//! The fields of a request's objects that Defender reads outside the policy
//! kinds, as dotted paths from the object's top (`metadata.labels`,
//! `spec.group`). Each kind states its own ([`crate::policy::Spec::READS`]).
//!
//! The AdmissionReview parse keeps only part of each object, and checks
//! against these and the kinds' reads when it is compiled: a reader that
//! starts reading a field the parse skips fails the build, not a review in
//! production. A reader that starts reading a new field adds it here.

/// Who reads what: the request facts policies share, and custom resources.
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
    // A CustomResourceDefinition's group, names, versions and scope.
    ("custom-resources", &["metadata.name", "spec.group", "spec.names", "spec.versions", "spec.scope"]),
];
