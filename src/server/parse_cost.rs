//! What parsing a body will hold in memory, estimated before parsing it.
//!
//! A parsed review keeps objects as JSON trees, and a tree costs far more
//! than its text when it is made of many small maps: each map is a B-tree
//! node of several hundred bytes, however few its entries. A body of small
//! maps parses to some thirty times its size. So the buffer cap is charged
//! for the tree too, counted from the body's structure in one pass.

/// A map: a B-tree leaf (11 slots of key and value) and its allocation.
const MAP_BYTES: usize = 720;
/// A value in a map or array, and the allocation of a key or string.
const MEMBER_BYTES: usize = 96;
/// An array's header and the slack of its growth.
const ARRAY_BYTES: usize = 64;

/// Bytes the parsed tree of `body` may hold, on top of the body.
pub fn estimate(body: &[u8]) -> usize {
    let (mut maps, mut arrays, mut members) = (0usize, 0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => maps += 1,
            b'[' => arrays += 1,
            // Every member but the first of each map or array follows a comma.
            b',' => members += 1,
            _ => {}
        }
    }
    let members = members + maps + arrays;
    // String contents are at most the body's own bytes (escapes only shrink).
    body.len() + maps * MAP_BYTES + arrays * ARRAY_BYTES + members * MEMBER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_maps_cost_far_more_than_their_text() {
        let maps = format!("[{}]", vec![r#"{"a":{}}"#; 1000].join(","));
        assert!(estimate(maps.as_bytes()) > 100 * maps.len(), "{}", estimate(maps.as_bytes()));
    }

    #[test]
    fn strings_cost_about_their_length_and_hide_their_brackets() {
        let text = format!(r#"{{"path": "{}"}}"#, "{[,".repeat(10_000));
        let cost = estimate(text.as_bytes());
        assert!(cost < 2 * text.len(), "{cost}");
        let escaped = r#"{"a": "quote \" then { and \\"}"#;
        assert_eq!(estimate(escaped.as_bytes()), escaped.len() + MAP_BYTES + MEMBER_BYTES);
    }
}
