//! A request body gathered as it arrives, in pieces charged to the buffer cap.

use axum::body::Bytes;

use crate::server::memory::{BufferReservation, Shed};

/// The largest piece a body is gathered in.
const PIECE_BYTES: usize = 256 * 1024;

/// A body gathered in pieces that are never moved or grown. A new piece is as
/// large as the body so far (so pieces double and a small body is one piece),
/// at least the data that starts it, at most [`PIECE_BYTES`] and what the body
/// can still bring. A buffer that doubles by copying frees a block of every
/// size on its way, blocks no later request asks for again; the allocator
/// keeps them, and memory grows far past the cap. Pieces of one size are
/// reused instead. Each piece is charged whole when it is made.
pub struct Pieces {
    pieces: Vec<Vec<u8>>,
    len: usize,
    /// The most the body can bring: its declared length, or the limit.
    most: usize,
}

impl Pieces {
    pub fn new(most: usize) -> Self {
        Self { pieces: Vec::new(), len: 0, most }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `data`, charging `reservation` for each new piece first.
    pub fn extend(&mut self, mut data: &[u8], reservation: &mut BufferReservation) -> Result<(), Shed> {
        while !data.is_empty() {
            let piece = match self.pieces.last_mut() {
                Some(piece) if piece.len() < piece.capacity() => piece,
                _ => {
                    let size =
                        data.len().max(self.len).min(PIECE_BYTES).min(self.most.saturating_sub(self.len));
                    let size = size.max(1);
                    reservation.reserve_up_to(reservation.bytes() + size)?;
                    self.pieces.push(Vec::with_capacity(size));
                    self.pieces.last_mut().expect("just pushed")
                }
            };
            let taken = data.len().min(piece.capacity() - piece.len());
            piece.extend_from_slice(&data[..taken]);
            self.len += taken;
            data = &data[taken..];
        }
        Ok(())
    }

    /// The body in one buffer. Joining holds the pieces and the joined copy
    /// at once, so the reservation covers both until the pieces are freed.
    pub fn join(mut self, reservation: &mut BufferReservation) -> Result<Bytes, Shed> {
        if self.pieces.len() <= 1 {
            return Ok(Bytes::from(self.pieces.pop().unwrap_or_default()));
        }
        reservation.reserve_up_to(reservation.bytes() + self.len)?;
        let mut joined = Vec::with_capacity(self.len);
        for piece in self.pieces {
            joined.extend_from_slice(&piece);
        }
        reservation.release_down_to(self.len);
        Ok(Bytes::from(joined))
    }
}
