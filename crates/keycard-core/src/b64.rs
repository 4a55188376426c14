//! Strict base64url (RFC 7515 §2): no padding, no trailing bits, so every
//! token has exactly one encoding.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Decode strict base64url.
pub(crate) fn decode(input: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    STRICT.decode(input)
}

/// Decode strict base64url into `out`, returning the length written.
pub(crate) fn decode_slice(
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, base64::DecodeSliceError> {
    STRICT.decode_slice(input, out)
}

/// Encode base64url without padding.
pub(crate) fn encode(input: &[u8]) -> String {
    STRICT.encode(input)
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_canonical_encodings_are_refused() {
        assert_eq!(super::decode(b"YQ").unwrap(), b"a");
        assert!(super::decode(b"YR").is_err(), "trailing bits");
        assert!(super::decode(b"YQ==").is_err(), "padding");
        assert!(super::decode(b"Y+").is_err(), "standard alphabet");
    }
}
