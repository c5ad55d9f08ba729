//! The hashes Statsig's SDKs agree on: bucketing, name hashing and ID-list keys.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// First 8 bytes of SHA-256 over `parts` joined by `.`, as a big-endian u64.
///
/// Pass percentages use `hash % 10000`, `user_bucket` uses `hash % 1000`. Bucketing strings
/// (salt, rule salt, unit id) nearly always fit one 64-byte block: those are padded on the
/// stack and compressed once, skipping the streaming hasher's buffering; longer ones stream.
pub fn unit_hash(parts: &[&str]) -> u64 {
    let len = parts.iter().map(|p| p.len()).sum::<usize>() + parts.len().saturating_sub(1);
    if len > ONE_BLOCK_MAX {
        return streamed_unit_hash(parts);
    }
    let mut block = [0u8; 64];
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            block[at] = b'.';
            at += 1;
        }
        block[at..at + part.len()].copy_from_slice(part.as_bytes());
        at += part.len();
    }
    block[at] = 0x80;
    block[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    let mut state = SHA256_INIT;
    sha2::compress256(&mut state, &[block.into()]);
    (u64::from(state[0]) << 32) | u64::from(state[1])
}

/// The longest message whose padding (0x80 and the 8-byte bit length) fits the same block.
const ONE_BLOCK_MAX: usize = 55;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn streamed_unit_hash(parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b".");
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Statsig's djb2 name hash: 32-bit wrapping arithmetic over Unicode scalar values,
/// printed unsigned (the core SDK's choice; JS iterates UTF-16 units and differs on emoji).
pub fn djb2(name: &str) -> String {
    let mut hash: u32 = 0;
    for c in name.chars() {
        hash = (hash << 5).wrapping_sub(hash).wrapping_add(c as u32);
    }
    hash.to_string()
}

/// Standard base64 of the SHA-256 digest: `hash: "sha256"` name hashing.
pub fn sha256_base64(name: &str) -> String {
    BASE64.encode(Sha256::digest(name.as_bytes()))
}

/// The key an ID-list file stores for a unit: the first 8 characters of base64(SHA-256(id)),
/// which are the base64 of the digest's first 6 bytes (base64 maps 3 bytes to 4 characters),
/// so no string is built: `in_segment_list` runs on the request path.
pub fn id_list_key(unit_id: &str) -> [u8; 8] {
    let digest = Sha256::digest(unit_id.as_bytes());
    let mut key = [0u8; 8];
    let written = BASE64.encode_slice(&digest[..6], &mut key);
    debug_assert_eq!(written, Ok(8));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn djb2_matches_statsig_examples() {
        // Values from statsig-server-core's gcir tests.
        assert_eq!(djb2("a_gate"), "2867927529");
        assert_eq!(djb2("partial_gate"), "610600137");
        assert_eq!(djb2("test_public"), "3968762550");
    }

    #[test]
    fn unit_hash_is_big_endian_prefix_of_the_dotted_sha256() {
        let digest = Sha256::digest(b"salt.rule.user");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(unit_hash(&["salt", "rule", "user"]), expected);
        assert_ne!(
            unit_hash(&["salt", "rule", "user"]),
            unit_hash(&["salt", "rule", "user2"])
        );
    }

    #[test]
    fn one_block_and_streamed_hashes_agree_at_every_length() {
        // Across the one-block boundary (55 bytes joined) and past it, 1 to 3 parts.
        let text: String = ('a'..='z').cycle().take(130).collect();
        for len in 0..text.len() {
            let whole = &text[..len];
            let (a, b) = whole.split_at(len / 3);
            let (b, c) = b.split_at(b.len() / 2);
            for parts in [vec![whole], vec![a, b], vec![a, b, c]] {
                let joined = parts.join(".");
                let digest = Sha256::digest(joined.as_bytes());
                let expected = u64::from_be_bytes(digest[..8].try_into().unwrap());
                assert_eq!(unit_hash(&parts), expected, "{joined:?}");
            }
        }
    }

    #[test]
    fn id_list_key_is_base64_prefix() {
        assert_eq!(&id_list_key("u1"), &sha256_base64("u1").as_bytes()[..8]);
    }
}
