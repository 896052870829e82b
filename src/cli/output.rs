//! `--output`: how `defender test` and `defender check` report, for people
//! or for CI systems.

/// The report format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people to read.
    #[default]
    Text,
    /// One JSON document (schema in README.md, "Reports for CI").
    Json,
    /// JUnit XML, which CI systems show as test results.
    Junit,
}
