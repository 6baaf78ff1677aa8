//! DKIM helpers for integration tests: keys made by `openssl` at test time (no key is ever
//! committed) and verification by an independent implementation, Debian's python3-dkim
//! (dkimpy), with the public key handed over instead of a DNS lookup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Debian's interpreter, which has python3-dkim (a pyenv `python3` on the PATH may not).
pub const PYTHON: &str = "/usr/bin/python3";

/// Verifies a DKIM signature with dkimpy, the public key given instead of a DNS lookup.
pub fn dkim_verifies(message: &[u8], key_type: &str, public: &str) -> (bool, String) {
    const VERIFY: &str = "import dkim, sys, logging\n\
        rec = ('v=DKIM1; k=' + sys.argv[1] + '; p=' + sys.argv[2]).encode()\n\
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n\
        ok = dkim.verify(sys.stdin.buffer.read(), logger=logging.getLogger('dkim'), dnsfunc=lambda name, timeout=5: rec)\n\
        sys.exit(0 if ok else 1)\n";
    let mut child = Command::new(PYTHON)
        .args(["-c", VERIFY, key_type, public])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

/// Makes a key in `dir` ("pkcs1", "pkcs8" or "ed25519"; "rsa1024" and "rsa512" for keys too
/// small to sign with): (PEM text, k=, p=).
pub fn make_key(dir: &Path, kind: &str) -> (Vec<u8>, &'static str, String) {
    use base64::Engine as _;
    let path = dir.join(format!("{kind}.pem"));
    let p = path.to_str().unwrap();
    match kind {
        "pkcs1" => openssl(&["genrsa", "-traditional", "-out", p, "2048"]),
        "rsa1024" => openssl(&["genrsa", "-traditional", "-out", p, "1024"]),
        "rsa512" => openssl(&["genrsa", "-traditional", "-out", p, "512"]),
        "pkcs8" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]),
        _ => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
    };
    let der = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let pem = std::fs::read(&path).unwrap();
    if kind == "ed25519" {
        (pem, "ed25519", b64.encode(&der[der.len() - 32..]))
    } else {
        (pem, "rsa", b64.encode(&der))
    }
}
