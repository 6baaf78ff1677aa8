//! DKIM signing (RFC 6376) with relaxed/relaxed canonicalization, RSA-SHA256 and Ed25519-SHA256
//! (RFC 8463), done with `aws-lc-rs` (the program's one crypto crate; rustls uses it too). Its
//! RSA signing runs OpenSSL's own assembly (AVX-512 IFMA, AVX2) and reaches about 0.9x `openssl
//! speed`, where `ring` reached 0.4x: most bulk senders sign with RSA-2048, so this bounds how
//! fast a signed campaign can go. lettre's own signer uses the pure-Rust `rsa` crate, slower
//! still, and its default simple header canonicalization is rejected by common verifiers. Reads PKCS#1 and PKCS#8 PEM keys (and lettre's base64 Ed25519 seed). Owns
//! canonicalization and the DKIM-Signature header; never sends and never reads recipients.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The headers signed when present, in this order: what RFC 6376 §5.4.1 recommends plus the MIME
/// headers, both List-Unsubscribe headers (RFC 8058 §4 requires those to be signed), List-Id and
/// Feedback-ID (a list's identity should not be forgeable onto someone else's mail).
pub const SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "feedback-id",
];

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("could not read the DKIM private key: {source} ({})", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the DKIM private key is not usable: {reason} ({})", path.display())]
    NotAKey { path: PathBuf, reason: String },
    #[error("DKIM: {0}")]
    Setting(String),
    #[error("DKIM signing failed: {0}")]
    Sign(String),
}

enum Key {
    Rsa(Box<RsaKeyPair>),
    Ed25519(Box<Ed25519KeyPair>),
}

/// A loaded key with the domain and selector it signs for.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for DkimSigner {
    // Hand-written: the key must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

fn pem_block(text: &str) -> Option<(String, &str)> {
    let start = text.find("-----BEGIN ")?;
    let after = &text[start + 11..];
    let label_end = after.find("-----")?;
    let label = after[..label_end].to_string();
    let body = &after[label_end + 5..];
    let end = body.find("-----END ")?;
    Some((label, &body[..end]))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    BASE64.decode(compact).ok()
}

impl DkimSigner {
    /// Reads the key file named by `[dkim] private_key`.
    pub fn load(domain: &str, selector: &str, path: &Path) -> Result<DkimSigner, DkimError> {
        let bytes = std::fs::read(path).map_err(|source| DkimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        DkimSigner::from_pem(domain, selector, &bytes).map_err(|reason| DkimError::NotAKey {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a key: PEM PKCS#1 (`RSA PRIVATE KEY`), PEM PKCS#8 (`PRIVATE KEY`, RSA or
    /// Ed25519), or the base64 of a 32-byte Ed25519 seed.
    pub fn from_pem(domain: &str, selector: &str, bytes: &[u8]) -> Result<DkimSigner, String> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let selector = selector.trim().to_ascii_lowercase();
        let valid_label = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if !valid_label(&domain) || !valid_label(&selector) {
            return Err(format!(
                "the domain \"{domain}\" and selector \"{selector}\" must be ASCII DNS names (use the xn-- form)"
            ));
        }
        let text = String::from_utf8_lossy(bytes);
        let key = match pem_block(&text) {
            Some((label, body)) => {
                let der = decode_base64(body)
                    .ok_or_else(|| format!("the PEM block \"{label}\" is not valid base64"))?;
                match label.as_str() {
                    "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
                        .map(|key| Key::Rsa(Box::new(key)))
                        .map_err(|error| format!("the RSA key was rejected ({error}); RSA keys must be 2048 to 4096 bits"))?,
                    "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(&der) {
                        Ok(key) => Key::Rsa(Box::new(key)),
                        Err(rsa_error) => match Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                            Ok(key) => Key::Ed25519(Box::new(key)),
                            Err(_) => {
                                return Err(format!(
                                    "the PKCS#8 key is neither a usable RSA key ({rsa_error}; 2048 to 4096 bits) nor an Ed25519 key"
                                ));
                            }
                        },
                    },
                    "ENCRYPTED PRIVATE KEY" => {
                        return Err("the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)".into());
                    }
                    other if other.contains("PUBLIC KEY") => {
                        return Err("this is a public key; give the private key".into());
                    }
                    other => return Err(format!("a \"{other}\" PEM block is not a private key")),
                }
            }
            None => match decode_base64(&text) {
                Some(seed) if seed.len() == 32 => Ed25519KeyPair::from_seed_unchecked(&seed)
                    .map(|key| Key::Ed25519(Box::new(key)))
                    .map_err(|error| format!("the Ed25519 seed was rejected ({error})"))?,
                _ => {
                    return Err(
                        "no \"-----BEGIN … PRIVATE KEY-----\" block and not a base64 Ed25519 seed"
                            .into(),
                    );
                }
            },
        };
        // aws-lc-rs takes RSA keys up to 8192 bits, but RFC 8301 §3.2 only obliges verifiers to
        // check keys of up to 4096: a larger key would sign mail that receivers may not verify.
        if let Key::Rsa(rsa) = &key
            && rsa.public_modulus_len() > 4096 / 8
        {
            return Err(format!(
                "the RSA key has {} bits; RSA keys must be 2048 to 4096 bits (RFC 8301)",
                rsa.public_modulus_len() * 8
            ));
        }
        Ok(DkimSigner {
            domain,
            selector,
            key,
            rng: SystemRandom::new(),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The `p=` value of the DNS record for Ed25519 keys (RFC 8463: the raw 32-byte key). For
    /// RSA, this is the PKCS#1 RSAPublicKey, which verifiers also accept in `p=`.
    pub fn public_key_base64(&self) -> String {
        match &self.key {
            Key::Rsa(key) => BASE64.encode(key.public_key().as_ref()),
            Key::Ed25519(key) => BASE64.encode(key.public_key().as_ref()),
        }
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The public half of the key, in the form [`read_published_key`] gives a DNS record's, so
    /// the deliverability check can tell whether DNS holds this key (issue #23).
    pub fn public_key(&self) -> PublicKey {
        match &self.key {
            Key::Rsa(key) => {
                read_rsa_public_key(key.public_key().as_ref()).unwrap_or(PublicKey::Rsa {
                    modulus: Vec::new(),
                    exponent: Vec::new(),
                })
            }
            Key::Ed25519(key) => PublicKey::Ed25519(key.public_key().as_ref().to_vec()),
        }
    }

    /// The TXT record to publish at `selector._domainkey.domain`: for RSA the
    /// SubjectPublicKeyInfo (what `openssl -pubout` writes, and all verifiers read; OpenDKIM
    /// reads only that form), for Ed25519 the raw key (RFC 8463 §4).
    pub fn dns_record(&self) -> String {
        let p = match &self.key {
            Key::Rsa(key) => match key.public_key().as_der() {
                Ok(spki) => BASE64.encode(spki.as_ref()),
                Err(_) => BASE64.encode(key.public_key().as_ref()),
            },
            Key::Ed25519(key) => BASE64.encode(key.public_key().as_ref()),
        };
        format!("v=DKIM1; k={}; p={p}", self.public_key().kind())
    }

    /// Signs `message` (headers, blank line, body, CRLF line ends) and returns the
    /// `DKIM-Signature` header field, folded, ending in CRLF, to put in front of the message.
    pub fn sign(&self, message: &[u8], timestamp: i64) -> Result<String, DkimError> {
        let (head, body) = split_message(message);
        let body_hash = digest::digest(&digest::SHA256, &relaxed_body(body));
        let fields = header_fields(head);
        let mut signed_names = Vec::new();
        let mut data = Vec::with_capacity(head.len() + 512);
        for name in SIGNED_HEADERS {
            // RFC 6376 §5.4.2: the last instance of a header is signed first.
            if let Some(field) = fields
                .iter()
                .rev()
                .find(|field| field_name(field).eq_ignore_ascii_case(name))
            {
                relaxed_header(field, &mut data);
                data.extend_from_slice(b"\r\n");
                signed_names.push(*name);
            }
        }
        // Folded so no line passes 78 characters (RFC 5322 §2.1.1); h= may fold at its colons
        // (RFC 6376 §3.5 allows FWS there).
        let mut h_tag = String::from("\th=");
        let mut line_len = h_tag.len() + 1;
        for (index, name) in signed_names.iter().enumerate() {
            let piece = if index + 1 < signed_names.len() {
                format!("{name}:")
            } else {
                format!("{name};")
            };
            if line_len + piece.len() > 76 {
                h_tag.push_str("\r\n\t");
                line_len = 1;
            }
            line_len += piece.len();
            h_tag.push_str(&piece);
        }
        let mut header = format!(
            "DKIM-Signature: v=1; a={}; c=relaxed/relaxed;\r\n\td={}; s={}; t={timestamp};\r\n{h_tag}\r\n\tbh={};\r\n\tb=",
            self.algorithm(),
            self.domain,
            self.selector,
            BASE64.encode(body_hash.as_ref()),
        );
        relaxed_header(header.as_bytes(), &mut data);
        let signature = match &self.key {
            Key::Rsa(key) => {
                let mut out = vec![0; key.public_modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &self.rng, &data, &mut out)
                    .map_err(|_| DkimError::Sign("the RSA signature failed".into()))?;
                out
            }
            // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data.
            Key::Ed25519(key) => {
                let hash = digest::digest(&digest::SHA256, &data);
                key.sign(hash.as_ref()).as_ref().to_vec()
            }
        };
        let encoded = BASE64.encode(signature);
        // Folding inside b= is allowed: verifiers drop the whole value, whitespace included.
        for (index, chunk) in encoded.as_bytes().chunks(72).enumerate() {
            if index > 0 {
                header.push_str("\r\n\t");
            }
            header.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        }
        header.push_str("\r\n");
        Ok(header)
    }
}

/// A DKIM public key, as the private key implies it or as a DNS record publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// The modulus and exponent, big-endian without leading zeros: how a key is published
    /// (PKCS#1 RSAPublicKey or SubjectPublicKeyInfo) does not change them.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// The raw 32-byte key (RFC 8463 §4).
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// `k=` of the DNS record.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "rsa",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// The RSA modulus size in bits (256 for Ed25519, whose strength is not a size question).
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa { modulus, .. } => match modulus.first() {
                Some(first) => (modulus.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
                None => 0,
            },
            PublicKey::Ed25519(_) => 256,
        }
    }
}

/// Reads the key of a DKIM DNS record: `k=` (RFC 6376 §3.6.1: rsa when absent) and the decoded
/// `p=`. RSA keys are accepted as SubjectPublicKeyInfo (what `openssl -pubout` writes and most
/// guides publish) or as a bare PKCS#1 RSAPublicKey; Ed25519 keys are the raw 32 bytes.
pub fn read_published_key(kind: Option<&str>, p: &[u8]) -> Result<PublicKey, String> {
    match kind.map(str::trim).unwrap_or("rsa") {
        kind if kind.eq_ignore_ascii_case("rsa") => read_rsa_public_key(p).ok_or_else(|| {
            "p= is not an RSA public key (a truncated or mangled record?)".to_string()
        }),
        kind if kind.eq_ignore_ascii_case("ed25519") => {
            if p.len() == 32 {
                Ok(PublicKey::Ed25519(p.to_vec()))
            } else {
                Err(format!(
                    "p= holds {} bytes; an Ed25519 key is 32 (RFC 8463)",
                    p.len()
                ))
            }
        }
        other => Err(format!("k={other} is not a key type DKIM verifiers know")),
    }
}

/// One DER element: (tag, contents, the rest after it). Definite lengths only, as DER has.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

const DER_SEQUENCE: u8 = 0x30;
const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;

/// RSAPublicKey (RFC 8017 §A.1.1), or one wrapped in a SubjectPublicKeyInfo (RFC 5280 §4.1).
fn read_rsa_public_key(der: &[u8]) -> Option<PublicKey> {
    let (tag, body, _) = der_element(der)?;
    if tag != DER_SEQUENCE {
        return None;
    }
    let (first_tag, first, rest) = der_element(body)?;
    if first_tag == DER_SEQUENCE {
        // SubjectPublicKeyInfo: the algorithm, then the key as a BIT STRING whose first byte
        // counts the unused bits (0 for a DER structure).
        let (bits_tag, bits, _) = der_element(rest)?;
        let (&unused, key) = bits.split_first()?;
        if bits_tag != DER_BIT_STRING || unused != 0 {
            return None;
        }
        return read_rsa_public_key(key);
    }
    let (exponent_tag, exponent, _) = der_element(rest)?;
    if first_tag != DER_INTEGER || exponent_tag != DER_INTEGER {
        return None;
    }
    let strip = |bytes: &[u8]| {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        bytes[start..].to_vec()
    };
    let modulus = strip(first);
    if modulus.is_empty() {
        return None;
    }
    Some(PublicKey::Rsa {
        modulus,
        exponent: strip(exponent),
    })
}

/// Header block (without the blank line) and body.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(4).position(|window| window == b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &[]),
    }
}

/// The header fields of a header block, each with its continuation lines, without the final
/// CRLF.
fn header_fields(head: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index + 1 < head.len() {
        if head[index] == b'\r' && head[index + 1] == b'\n' {
            let next = head.get(index + 2);
            if !matches!(next, Some(b' ' | b'\t')) {
                if index > start {
                    fields.push(&head[start..index]);
                }
                start = index + 2;
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    if start < head.len() {
        fields.push(&head[start..]);
    }
    fields
}

fn field_name(field: &[u8]) -> &str {
    let end = field.iter().position(|b| *b == b':').unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).unwrap_or("").trim_end()
}

fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// RFC 6376 §3.4.2: lower-case name, unfolded value, whitespace runs as one space, no space
/// around the colon or at the end. Appends `name:value` (no CRLF) to `out`.
fn relaxed_header(field: &[u8], out: &mut Vec<u8>) {
    let colon = field.iter().position(|b| *b == b':').unwrap_or(field.len());
    let name = &field[..colon];
    let name_end = name
        .iter()
        .rposition(|b| !is_wsp(*b))
        .map_or(0, |at| at + 1);
    out.extend(name[..name_end].iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    let value = field.get(colon + 1..).unwrap_or(&[]);
    let mut pending_space = false;
    let mut started = false;
    for &byte in value {
        if byte == b'\r' || byte == b'\n' {
            continue;
        }
        if is_wsp(byte) {
            pending_space = true;
            continue;
        }
        if pending_space && started {
            out.push(b' ');
        }
        pending_space = false;
        started = true;
        out.push(byte);
    }
}

/// RFC 6376 §3.4.4: whitespace runs as one space, none at line ends, no empty lines at the end;
/// an empty body stays empty.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut line_out = Vec::with_capacity(256);
    let mut blank_lines = 0usize;
    for line in body.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Most lines need no change: no tab, no double space, no trailing space.
        let clean = !line.is_empty()
            && line.last().is_some_and(|b| !is_wsp(*b))
            && !line.contains(&b'\t')
            && !line.windows(2).any(|pair| pair == b"  ");
        if clean {
            for _ in 0..blank_lines {
                out.extend_from_slice(b"\r\n");
            }
            blank_lines = 0;
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        line_out.clear();
        let mut pending_space = false;
        for &byte in line {
            if is_wsp(byte) {
                pending_space = true;
                continue;
            }
            if pending_space {
                line_out.push(b' ');
                pending_space = false;
            }
            line_out.push(byte);
        }
        if line_out.is_empty() {
            blank_lines += 1;
            continue;
        }
        // Empty lines are kept only when text follows them.
        for _ in 0..blank_lines {
            out.extend_from_slice(b"\r\n");
        }
        blank_lines = 0;
        out.extend_from_slice(&line_out);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relaxed(field: &str) -> String {
        let mut out = Vec::new();
        relaxed_header(field.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_canonicalization() {
        assert_eq!(
            relaxed("Subject :  Hello \r\n\tWorld  "),
            "subject:Hello World"
        );
        assert_eq!(relaxed("To: a@b.example"), "to:a@b.example");
        assert_eq!(relaxed("X-Empty:"), "x-empty:");
    }

    #[test]
    fn body_canonicalization() {
        let check = |body: &str, expected: &str| {
            assert_eq!(
                String::from_utf8(relaxed_body(body.as_bytes())).unwrap(),
                expected,
                "{body:?}"
            );
        };
        check("", "");
        check("\r\n\r\n", "");
        check("a  b \t\r\n", "a b\r\n");
        check("a\r\n\r\nb\r\n\r\n\r\n", "a\r\n\r\nb\r\n");
        check("no newline", "no newline\r\n");
        check(" lead\r\n", " lead\r\n");
    }

    #[test]
    fn fields_keep_continuations() {
        let head = b"From: a\r\nSubject: x\r\n y\r\nTo: b\r\n";
        let fields = header_fields(head);
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1], b"Subject: x\r\n y");
        assert_eq!(field_name(fields[2]), "To");
    }

    #[test]
    fn published_keys_are_read_in_both_rsa_forms() {
        // A toy RSAPublicKey: n = 0x00C5 (leading zero as DER writes it), e = 65537.
        let pkcs1 = [
            0x30, 0x09, 0x02, 0x02, 0x00, 0xC5, 0x02, 0x03, 0x01, 0x00, 0x01,
        ];
        let key = read_published_key(None, &pkcs1).unwrap();
        assert_eq!(
            key,
            PublicKey::Rsa {
                modulus: vec![0xC5],
                exponent: vec![1, 0, 1]
            }
        );
        assert_eq!(key.bits(), 8);
        // The same key inside a SubjectPublicKeyInfo (rsaEncryption OID, NULL parameters).
        let mut spki = vec![0x30, 0x1D, 0x30, 0x0D, 0x06, 0x09];
        spki.extend([
            0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00,
        ]);
        spki.extend([0x03, 0x0C, 0x00]);
        spki.extend(pkcs1);
        assert_eq!(read_published_key(Some("rsa"), &spki).unwrap(), key);
        // Truncated records, wrong types and sizes are refused with a reason.
        assert!(read_published_key(None, &spki[..spki.len() - 3]).is_err());
        assert!(read_published_key(Some("ed25519"), &[1; 31]).is_err());
        assert!(read_published_key(Some("dsa"), &[1; 32]).is_err());
        assert_eq!(
            read_published_key(Some("ed25519"), &[1; 32])
                .unwrap()
                .bits(),
            256
        );
    }

    #[test]
    fn the_signers_public_key_is_what_dns_should_hold() {
        let seed = BASE64.encode([9u8; 32]);
        let signer = DkimSigner::from_pem("acme.example", "s1", seed.as_bytes()).unwrap();
        let published = BASE64.decode(signer.public_key_base64()).unwrap();
        assert_eq!(
            read_published_key(Some("ed25519"), &published).unwrap(),
            signer.public_key()
        );
        assert_eq!(signer.selector(), "s1");
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        for bad in [
            "hello",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(
                DkimSigner::from_pem("acme.example", "s1", bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        let seed = BASE64.encode([7u8; 32]);
        assert!(DkimSigner::from_pem("bücher.example", "s1", seed.as_bytes()).is_err());
        let signer = DkimSigner::from_pem("Acme.Example.", "s1", seed.as_bytes()).unwrap();
        assert_eq!(signer.algorithm(), "ed25519-sha256");
        assert_eq!(signer.domain(), "acme.example");
        let header = signer
            .sign(b"From: a@acme.example\r\nTo: b@x.example\r\n\r\nHi\r\n", 1)
            .unwrap();
        assert!(
            header.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{header}"
        );
        assert!(header.contains("h=from:to;"), "{header}");
        assert!(header.lines().all(|line| line.len() <= 78), "{header}");
    }
}
