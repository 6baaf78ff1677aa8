//! The SASL strings a bearer token travels in: XOAUTH2 (Google's and Microsoft's documented
//! mechanism) and OAUTHBEARER (RFC 7628), base64-encoded for `AUTH` (SMTP) and `AUTHENTICATE`
//! (IMAP). Pure; the sessions call these and know nothing else of OAuth2.

use base64::Engine;

/// XOAUTH2's initial client response: `user=USER^Aauth=Bearer TOKEN^A^A`, base64.
pub fn xoauth2(user: &str, token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xoauth2_raw(user, token))
}

/// The same, before base64 (async-imap's authenticator encodes it itself).
pub fn xoauth2_raw(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// OAUTHBEARER's initial client response (RFC 7628 §3.1), base64: the GS2 header naming the
/// user (`,` and `=` escaped as RFC 5801 §4 says), then host, port and the bearer.
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(oauthbearer_raw(user, host, port, token))
}

/// OAUTHBEARER's answer to the server's error challenge: the single %x01 of RFC 7628 §3.2.3
/// (a "dummy" response that ends the exchange so the server can fail it), base64 for SMTP.
pub const OAUTHBEARER_ERROR_ANSWER: &str = "AQ==";

/// The same before base64 (IMAP's authenticator encodes it itself).
pub const OAUTHBEARER_ERROR_ANSWER_RAW: &str = "\x01";

/// OAUTHBEARER's initial client response before base64.
pub fn oauthbearer_raw(user: &str, host: &str, port: u16, token: &str) -> String {
    let user = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oauthbearer_error_answer_is_one_x01() {
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(OAUTHBEARER_ERROR_ANSWER_RAW),
            OAUTHBEARER_ERROR_ANSWER
        );
    }

    #[test]
    fn initial_responses_are_as_documented() {
        assert_eq!(
            xoauth2_raw("news@acme.example", "tok"),
            "user=news@acme.example\x01auth=Bearer tok\x01\x01"
        );
        // Google's documented example.
        assert_eq!(
            xoauth2(
                "someuser@example.com",
                "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
            ),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        assert_eq!(
            oauthbearer_raw("a,b=c@x", "smtp.x", 587, "t"),
            "n,a=a=2Cb=3Dc@x,\x01host=smtp.x\x01port=587\x01auth=Bearer t\x01\x01"
        );
    }
}
