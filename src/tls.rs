//! TLS, a capability with one owner (a leaf: imports nothing of Herald's): rustls with the
//! aws-lc-rs provider (the program's one crypto library; DKIM signs with it too), the trust store
//! (Mozilla's roots from webpki-roots plus a user's own `ca_file`), and the unauthenticated
//! configuration opportunistic STARTTLS uses in direct mode (RFC 7435: encryption without
//! authentication still beats plain text). SMTP sessions (RFC 3207 STARTTLS, RFC 8314 implicit
//! TLS), the mailbox reader's IMAP, the HTTP client (`http`) and the unsubscribe endpoint's own
//! certificate all ask it for a configured connector or acceptor and nothing else, so the
//! program has one rustls setup, one crypto provider and one notion of "trusted". Client
//! configurations are built once per CA file and shared by every session, with session
//! resumption off, so each handshake still checks the server's certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
};

pub use tokio_rustls::TlsAcceptor as Acceptor;
pub use tokio_rustls::TlsConnector as Connector;
pub use tokio_rustls::client::TlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// The provider is named explicitly: another crate enabling a second rustls backend must not
/// make `ClientConfig::builder()` ambiguous (it panics then).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The verified client configurations built so far, by the CA PEM trusted beside the public
/// roots (None: the roots alone). Building one copies Mozilla's roots and parses the CA file;
/// relay TLS and MTA-STS enforce ask for one per SMTP session, and building it each time made
/// enforce sends up to 1.78× slower (issue #23's bench), so each is built once per process and
/// shared. Keyed by the file's bytes, not its path, so an edited CA file is read afresh.
static VERIFIED: OnceLock<Mutex<ConfigsByCa>> = OnceLock::new();

/// Configurations by the CA PEM they trust beside the roots.
type ConfigsByCa = HashMap<Option<Vec<u8>>, Arc<ClientConfig>>;

/// More distinct CA files than a person edits in one sitting; past it the cache starts over.
const MAX_VERIFIED: usize = 16;

/// The client configuration that authenticates the server against the public roots and
/// `ca_pem`, shared by every caller asking with the same CA (see [`VERIFIED`]).
pub fn verified_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let cache = VERIFIED.get_or_init(|| Mutex::new(HashMap::new()));
    let key = ca_pem.map(<[u8]>::to_vec);
    if let Some(config) = lock(cache).get(&key) {
        return Ok(Arc::clone(config));
    }
    // Built outside the lock: two sessions racing build twice, and one of the two is kept.
    let config = build_verified(ca_pem)?;
    let mut cached = lock(cache);
    if cached.len() >= MAX_VERIFIED {
        cached.clear();
    }
    Ok(Arc::clone(cached.entry(key).or_insert(config)))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn build_verified(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("the CA file is not a PEM certificate: {error}"))?;
        if certificates.is_empty() {
            return Err("the CA file is not a PEM certificate: no certificate in it".into());
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| format!("the CA file's certificate is unusable: {error}"))?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(no_resumption(config)))
}

/// A shared configuration would otherwise resume sessions (rustls keeps tickets per config),
/// and a resumed TLS 1.3 session skips the certificate check (RFC 8446 §2.2): a server that
/// once passed would be trusted again without showing its certificate. Every session makes a
/// full handshake, as when each had a configuration of its own.
fn no_resumption(mut config: ClientConfig) -> ClientConfig {
    config.resumption = Resumption::disabled();
    config
}

/// A connector that authenticates the server against the public roots and `ca_pem`.
pub fn verified(ca_pem: Option<&[u8]>) -> Result<TlsConnector, String> {
    verified_config(ca_pem).map(TlsConnector::from)
}

/// An acceptor serving the certificate chain `cert_pem` (the server's certificate first, as
/// certbot's fullchain.pem has it) with the private key `key_pem` (PKCS#8, PKCS#1 or SEC1),
/// speaking HTTP/1.1 only (RFC 7301 ALPN). The error says which file is wrong.
pub fn acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<Acceptor, AcceptorError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| AcceptorError::Certificate(format!("not PEM: {error}")))?;
    if chain.is_empty() {
        return Err(AcceptorError::Certificate(
            "no CERTIFICATE block in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|error| AcceptorError::Key(format!("no private key in it: {error}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| AcceptorError::Pair(error.to_string()))?
        .with_no_client_auth()
        // Also checks that the key belongs to the certificate.
        .with_single_cert(chain, key)
        .map_err(|error| AcceptorError::Pair(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptor::from(Arc::new(config)))
}

/// Why [`acceptor`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptorError {
    /// The certificate file.
    Certificate(String),
    /// The key file.
    Key(String),
    /// The two together (a key that is not the certificate's, an unsupported key type).
    Pair(String),
}

/// Why the server's certificate was refused, in words ("no known CA issued it"), when that is
/// why a handshake failed; None when it failed otherwise (reset, protocol, timeout).
pub fn certificate_problem(error: &std::io::Error) -> Option<String> {
    let Some(rustls::Error::InvalidCertificate(problem)) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return None;
    };
    Some(match problem {
        CertificateError::UnknownIssuer => "no known CA issued it".to_string(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not for this host name".to_string()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".to_string()
        }
        other => format!("{other:?}"),
    })
}

/// A connector that encrypts without authenticating the certificate (opportunistic STARTTLS
/// to MX hosts, which rarely present a certificate for the name we looked up). Handshake
/// signatures are still checked, so the session key belongs to whoever holds the certificate.
pub fn unverified() -> Result<TlsConnector, String> {
    // Built once, like the verified ones: direct mode asks for it on every STARTTLS.
    static UNVERIFIED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    UNVERIFIED
        .get_or_init(build_unverified)
        .clone()
        .map(TlsConnector::from)
}

fn build_unverified() -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(no_resumption(config)))
}

/// The name TLS is negotiated for (SNI and, when verified, the certificate's name).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|error| format!("{host}: {error}"))
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
