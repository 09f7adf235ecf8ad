//! 64-bit FNV-1a (Fowler–Noll–Vo), as specified at http://www.isthe.com/chongo/tech/comp/fnv/.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`: for each byte, xor it in, then multiply by the prime (mod 2^64).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The digest as 16 lowercase hex digits.
pub fn hex_digest(text: &str) -> String {
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn hex_is_16_lowercase_digits() {
        assert_eq!(hex_digest(""), "cbf29ce484222325");
        assert_eq!(hex_digest("a"), "af63dc4c8601ec8c");
        // Leading zeros are kept.
        for s in ["x", "hello", "ü", "日本語"] {
            let d = hex_digest(s);
            assert_eq!(d.len(), 16);
            assert!(d.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{d}");
        }
    }
}
