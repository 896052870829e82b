//! Reading a request body with a size limit.
//!
//! A body just over the limit is read to its end before the 413 goes out:
//! closing a connection with unread data makes the kernel reset it, and the
//! client would see "connection reset" instead of the reason. Anything far over
//! the limit is cut off without reading.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

/// How far past the limit a body is still read (and discarded) for a clean answer.
const DRAIN_ALLOWANCE: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the limit")]
    TooLarge,
    #[error("cannot read the request body: {0}")]
    Read(String),
}

/// The whole body, if it has at most `limit` bytes. `declared` is the Content-Length, if any.
pub async fn read_limited(body: Body, declared: Option<u64>, limit: usize) -> Result<Bytes, BodyError> {
    let limit_bytes = limit as u64;
    if declared.is_some_and(|length| length > limit_bytes + DRAIN_ALLOWANCE) {
        return Err(BodyError::TooLarge);
    }
    let mut body = body;
    let mut received: Vec<u8> = Vec::new();
    let mut over_by: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if over_by == 0 && received.len() + data.len() <= limit {
            received.extend_from_slice(&data);
            continue;
        }
        // Over the limit: stop keeping it, and stop reading once past the allowance.
        if over_by == 0 {
            received = Vec::new();
        }
        over_by = over_by.saturating_add(data.len() as u64).max(1);
        if over_by > DRAIN_ALLOWANCE + limit_bytes {
            return Err(BodyError::TooLarge);
        }
    }
    if over_by > 0 { Err(BodyError::TooLarge) } else { Ok(Bytes::from(received)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024;

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let body = read_limited(Body::from(vec![7u8; LIMIT]), Some(LIMIT as u64), LIMIT).await.unwrap();
        assert_eq!(body.len(), LIMIT);
        assert!(read_limited(Body::empty(), None, LIMIT).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_byte_over_is_too_large_declared_or_not() {
        for declared in [None, Some(LIMIT as u64 + 1)] {
            let result = read_limited(Body::from(vec![7u8; LIMIT + 1]), declared, LIMIT).await;
            assert!(matches!(result, Err(BodyError::TooLarge)), "{declared:?}");
        }
    }

    #[tokio::test]
    async fn a_declared_length_far_over_the_limit_is_refused_unread() {
        let declared = Some(LIMIT as u64 + DRAIN_ALLOWANCE + 1);
        let result = read_limited(Body::from("short"), declared, LIMIT).await;
        assert!(matches!(result, Err(BodyError::TooLarge)));
    }
}
