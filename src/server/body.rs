//! Reading a request body with a size limit, within the shared buffer cap.
//!
//! A body just over the limit is read to its end before the 413 goes out:
//! closing a connection with unread data makes the kernel reset it, and the
//! client would see "connection reset" instead of the reason. Anything far over
//! the limit is cut off without reading. Discarded bytes are not buffered, so
//! they hold nothing against the cap.
//!
//! The cap is charged only for bytes that have arrived (and the room left in
//! the piece they went into, see [`Pieces`]), never for a declared
//! Content-Length: a client that declares a large body and sends nothing
//! holds nothing. The declared length only bounds the pieces, sheds at once a
//! body that could never fit, and keeps a large body out of the room kept for
//! small ones.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

use crate::server::memory::{BufferReservation, Shed};
use crate::server::pieces::Pieces;

/// How far past the limit a body is still read (and discarded) for a clean answer.
const DRAIN_ALLOWANCE: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the limit")]
    TooLarge,
    #[error("buffering the request body would pass a memory cap")]
    Shed(Shed),
    #[error("cannot read the request body: {0}")]
    Read(String),
}

/// The whole body, if it has at most `limit` bytes. `declared` is the
/// Content-Length, if any. `reservation` starts empty and grows as the body
/// arrives.
pub async fn read_limited(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    reservation: &mut BufferReservation,
) -> Result<Bytes, BodyError> {
    let limit_bytes = limit as u64;
    if declared.is_some_and(|length| length > limit_bytes + DRAIN_ALLOWANCE) {
        return Err(BodyError::TooLarge);
    }
    // At most `limit`, so it fits in usize.
    let expected = declared.filter(|length| *length <= limit_bytes).map(|length| length as usize);
    if let Some(length) = expected {
        reservation.body_is_at_least(length).map_err(BodyError::Shed)?;
    }
    let mut received = Pieces::new(expected.unwrap_or(limit));
    let mut body = body;
    let mut over_by: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        let needed = received.len() + data.len();
        if over_by == 0 && needed <= limit {
            reservation.body_is_at_least(needed).map_err(BodyError::Shed)?;
            received.extend(&data, reservation).map_err(BodyError::Shed)?;
            continue;
        }
        // Over the limit: stop keeping it, and stop reading once past the allowance.
        if over_by == 0 {
            received = Pieces::new(0);
            reservation.release_down_to(0);
        }
        over_by = over_by.saturating_add(data.len() as u64).max(1);
        if over_by > DRAIN_ALLOWANCE + limit_bytes {
            return Err(BodyError::TooLarge);
        }
    }
    if over_by > 0 {
        return Err(BodyError::TooLarge);
    }
    received.join(reservation).map_err(BodyError::Shed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::{FutureExt, StreamExt};

    use super::*;
    use crate::server::memory::{Holdings, MemoryLimits};

    const LIMIT: usize = 1024;

    fn holdings(max_buffered_bytes: usize) -> Arc<Holdings> {
        Holdings::new(MemoryLimits { max_buffered_bytes, max_reviews_in_flight: 4 })
    }

    async fn read(body: Body, declared: Option<u64>) -> Result<Bytes, BodyError> {
        read_limited(body, declared, LIMIT, &mut holdings(LIMIT).buffer()).await
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let body = read(Body::from(vec![7u8; LIMIT]), Some(LIMIT as u64)).await.unwrap();
        assert_eq!(body.len(), LIMIT);
        assert!(read(Body::empty(), None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_byte_over_is_too_large_declared_or_not() {
        for declared in [None, Some(LIMIT as u64 + 1)] {
            let result = read(Body::from(vec![7u8; LIMIT + 1]), declared).await;
            assert!(matches!(result, Err(BodyError::TooLarge)), "{declared:?}");
        }
    }

    #[tokio::test]
    async fn a_declared_length_far_over_the_limit_is_refused_unread() {
        let declared = Some(LIMIT as u64 + DRAIN_ALLOWANCE + 1);
        let result = read(Body::from("short"), declared).await;
        assert!(matches!(result, Err(BodyError::TooLarge)));
    }

    #[tokio::test]
    async fn a_declared_length_holds_nothing_until_its_bytes_arrive() {
        let holdings = holdings(LIMIT);
        let mut reservation = holdings.buffer();
        let first = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 100]))]);
        let body = Body::from_stream(first.chain(futures::stream::pending()));
        // The first piece is read, then the rest never comes.
        let read = read_limited(body, Some(LIMIT as u64), LIMIT, &mut reservation).now_or_never();
        assert!(read.is_none());
        assert_eq!(reservation.bytes(), 100);
        assert_eq!(holdings.buffered_bytes(), 100);
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_joined_whole_and_holds_its_length() {
        let holdings = holdings(4 * LIMIT);
        let mut reservation = holdings.buffer();
        let frames: Vec<Vec<u8>> = (0..40u8).map(|index| vec![index; 1 + usize::from(index) % 7]).collect();
        let expected = frames.concat();
        let stream = futures::stream::iter(
            frames.into_iter().map(|frame| Ok::<_, std::io::Error>(Bytes::from(frame))),
        );
        let body = read_limited(Body::from_stream(stream), None, LIMIT, &mut reservation).await.unwrap();
        assert_eq!(body, expected);
        assert_eq!(reservation.bytes(), expected.len());
        assert_eq!(holdings.buffered_bytes(), expected.len());
    }

    #[tokio::test]
    async fn the_buffer_held_is_reserved_and_a_body_past_the_cap_is_shed() {
        let holdings = holdings(LIMIT / 2);
        let mut reservation = holdings.buffer();
        let body = read_limited(Body::from(vec![7u8; 100]), None, LIMIT, &mut reservation).await.unwrap();
        assert_eq!(body.len(), 100);
        assert!(reservation.bytes() >= 100);
        assert_eq!(holdings.buffered_bytes(), reservation.bytes());

        for declared in [None, Some(LIMIT as u64)] {
            let mut other = holdings.buffer();
            let result = read_limited(Body::from(vec![7u8; LIMIT]), declared, LIMIT, &mut other).await;
            assert!(matches!(result, Err(BodyError::Shed(Shed::BufferedBytes))), "{declared:?}");
        }
        drop(reservation);
        assert_eq!(holdings.buffered_bytes(), 0);
    }
}
