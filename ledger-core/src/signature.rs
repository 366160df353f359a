//! Webhook signatures: HMAC-SHA256 over `timestamp + "." + raw body`, carried as
//! `X-Signature: t=<unix seconds>,v1=<hex>`.
//!
//! One scheme both ways: the bank signs the inbound deposit webhook with it, and the outbound
//! relay signs every delivery with the endpoint's secret, so a receiver verifies ours exactly as
//! we verify the bank's. The timestamp inside the signed text bounds replays; verification
//! compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from the verifier's clock, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    #[error("expected t=<unix seconds>,v1=<hex>")]
    Malformed,
    /// The timestamp is too far from now.
    #[error("timestamp outside the 5 minute window")]
    Stale,
    /// The MAC does not match.
    #[error("signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Checks an `X-Signature` value over `body` at `now_secs`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_secs: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signature = decode_hex(value),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Malformed);
    };
    if now_secs.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    // verify_slice compares in constant time.
    mac(secret, timestamp, body).verify_slice(&signature).map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = sign(b"secret", 1_000, b"{\"a\":1}");
        assert_eq!(verify(b"secret", &header, b"{\"a\":1}", 1_000), Ok(()));
        assert_eq!(verify(b"secret", &header, b"{\"a\":1}", 1_000 + TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(b"secret", &header, b"{\"a\":2}", 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"other", &header, b"{\"a\":1}", 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"secret", &header, b"{\"a\":1}", 1_001 + TOLERANCE_SECS), Err(SignatureError::Stale));
        assert_eq!(verify(b"secret", "v1=00", b"", 0), Err(SignatureError::Malformed));
        assert_eq!(verify(b"secret", "t=1,v1=zz", b"", 1), Err(SignatureError::Malformed));
        let forged = header.replace("t=1000", "t=1001");
        assert_eq!(verify(b"secret", &forged, b"{\"a\":1}", 1_000), Err(SignatureError::Mismatch));
    }

    #[test]
    fn matches_an_independently_computed_hmac() {
        // python3: hmac.new(b"Jefe", b"0.what do ya want for nothing?", hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"Jefe", 0, b"what do ya want for nothing?"),
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }
}
