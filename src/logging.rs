//! Log output: readable lines for people, JSON lines for log pipelines.
//!
//! The level comes from `RUST_LOG` (default `info`), so a cluster operator can
//! turn on `defender=debug` without a new build.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// Writes what is still queued when dropped: keep it until the process ends.
#[must_use = "lines still queued are lost when this is dropped early"]
pub struct Flush {
    _queued: WorkerGuard,
}

/// Installs the global subscriber. Fails if one is already installed.
///
/// Lines are written to stderr by a thread of their own, so a review never
/// waits on the write (one a review, as served: a quarter of the throughput
/// when written inline). None is dropped: should the queue fill, logging
/// waits for it instead.
pub fn init(format: LogFormat) -> anyhow::Result<Flush> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, flush) = NonBlockingBuilder::default().lossy(false).finish(std::io::stderr());
    // Colours only for a person at a terminal; log collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("failed to set up logging: {e}"))?;
    Ok(Flush { _queued: flush })
}
