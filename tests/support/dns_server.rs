//! An authoritative DNS server for Herald's integration tests: hickory-server with in-memory
//! zones (`test.`, and `in-addr.arpa.` for reverse names), on 127.0.0.1 over real UDP and TCP,
//! answering MX, A, CNAME, TXT and PTR records the test adds (null MX included; names not in a
//! zone get NXDOMAIN, names outside every zone REFUSED). A record outside `test.` (a
//! well-known provider's host, such as smtp.office365.com) gets a zone of its own, named by its
//! last two labels, on this loopback server only. It counts the queries
//! it receives so a test can prove how many lookups Herald made, and its zone can be replaced
//! while it runs (a record fixed between two checks). Also a "silent" server that
//! takes queries and never answers. Owns its thread and tokio runtime, like the SMTP server.
//! Test-only.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::rr::rdata::{A, CNAME, MX, PTR, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::sync::oneshot;

const ORIGIN: &str = "test.";
const REVERSE: &str = "in-addr.arpa.";
/// RFC 1035 §3.3: a character-string holds at most 255 bytes.
const STRING_MAX: usize = 255;
const TTL: u32 = 300;

fn name(text: &str) -> Name {
    let full = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    match Name::from_utf8(&full) {
        Ok(name) => name,
        Err(e) => panic!("dns test server: bad name {full}: {e}"),
    }
}

/// The records the server answers: names in `test.`, or in a zone made for them.
#[derive(Default, Clone)]
pub struct Zone {
    records: Vec<Record>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// `domain MX preference host`.
    pub fn mx(mut self, domain: &str, preference: u16, host: &str) -> Zone {
        self.records.push(Record::from_rdata(
            name(domain),
            TTL,
            RData::MX(MX::new(preference, name(host))),
        ));
        self
    }

    /// The null MX of RFC 7505: `domain MX 0 .`.
    pub fn null_mx(mut self, domain: &str) -> Zone {
        self.records.push(Record::from_rdata(
            name(domain),
            TTL,
            RData::MX(MX::new(0, Name::root())),
        ));
        self
    }

    pub fn a(mut self, host: &str, ip: Ipv4Addr) -> Zone {
        self.records
            .push(Record::from_rdata(name(host), TTL, RData::A(A(ip))));
        self
    }

    pub fn cname(mut self, alias: &str, target: &str) -> Zone {
        self.records.push(Record::from_rdata(
            name(alias),
            TTL,
            RData::CNAME(CNAME(name(target))),
        ));
        self
    }

    /// A TXT record; text longer than one character-string is split into several, which
    /// readers join (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
    pub fn txt(self, domain: &str, text: &str) -> Zone {
        let parts: Vec<String> = text
            .as_bytes()
            .chunks(STRING_MAX)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.txt_strings(domain, &parts)
    }

    /// A TXT record made of exactly these character-strings.
    pub fn txt_strings(mut self, domain: &str, parts: &[&str]) -> Zone {
        assert!(
            parts.iter().all(|part| part.len() <= STRING_MAX),
            "dns test server: a TXT string holds at most 255 bytes"
        );
        self.records.push(Record::from_rdata(
            name(domain),
            TTL,
            RData::TXT(TXT::new(parts.iter().map(|p| p.to_string()).collect())),
        ));
        self
    }

    /// The reverse name of `ip` (`d.c.b.a.in-addr.arpa PTR host`).
    pub fn ptr(mut self, ip: Ipv4Addr, host: &str) -> Zone {
        let [a, b, c, d] = ip.octets();
        self.records.push(Record::from_rdata(
            name(&format!("{d}.{c}.{b}.{a}.{REVERSE}")),
            TTL,
            RData::PTR(PTR(name(host))),
        ));
        self
    }
}

type Log = Arc<Mutex<Vec<(String, String)>>>;

/// The zones being served; replaced whole by [`DnsServer::replace`].
type Served = Arc<Mutex<Arc<Catalog>>>;

/// Answers from the catalog, logging each query first.
struct Counting {
    catalog: Served,
    log: Log,
}

impl RequestHandler for Counting {
    // The trait is declared with `async_trait`; this is its desugared form, which spares a
    // dependency on the macro crate.
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        T: Time + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if let Ok(info) = request.request_info() {
            let queried = info.query.name().to_string().to_lowercase();
            let kind = info.query.query_type().to_string();
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((queried, kind));
        }
        let catalog = Arc::clone(&self.catalog.lock().unwrap_or_else(PoisonError::into_inner));
        Box::pin(async move {
            catalog
                .handle_request::<R, T>(request, response_handle)
                .await
        })
    }
}

/// A running test DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    log: Log,
    /// The zones answered from (None for the silent server).
    served: Option<Served>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The silent server's sockets, kept open so queries are received and never answered.
    _silent: Option<(StdUdpSocket, StdTcpListener)>,
}

impl DnsServer {
    /// Serves `zone` on 127.0.0.1 (UDP and TCP on the same free port).
    pub fn start(zone: Zone) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("dns test server: local addr");
        let catalog: Served = Arc::new(Mutex::new(Arc::new(catalog_of(zone))));
        let log: Log = Arc::default();
        let counting = Counting {
            catalog: Arc::clone(&catalog),
            log: Arc::clone(&log),
        };
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("dns-test-server-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("dns test server: runtime");
                runtime.block_on(async move {
                    udp.set_nonblocking(true).expect("nonblocking udp");
                    tcp.set_nonblocking(true).expect("nonblocking tcp");
                    let mut server = Server::new(counting);
                    server
                        .register_socket(tokio::net::UdpSocket::from_std(udp).expect("tokio udp"));
                    server.register_listener(
                        tokio::net::TcpListener::from_std(tcp).expect("tokio tcp"),
                        Duration::from_secs(5),
                        4_096,
                    );
                    let _ = shutdown_rx.await;
                    let _ = server.shutdown_gracefully().await;
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("dns test server: thread");
        DnsServer {
            addr,
            log,
            served: Some(catalog),
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            _silent: None,
        }
    }

    /// A server that receives every query and never answers (UDP read by nobody, TCP never
    /// accepted): the resolver must time out.
    pub fn silent() -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("dns test server: local addr");
        DnsServer {
            addr,
            log: Arc::default(),
            served: None,
            shutdown: None,
            thread: None,
            _silent: Some((udp, tcp)),
        }
    }

    /// Answers from `zone` from now on, in place of what was served (the port stays).
    pub fn replace(&self, zone: Zone) {
        let served = self
            .served
            .as_ref()
            .expect("dns test server: the silent server has no zone");
        *served.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog_of(zone));
    }

    /// `ip:port` for `[direct] nameservers`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries of `kind` (e.g. "MX", "A") named `domain` arrived.
    pub fn queries(&self, domain: &str, kind: &str) -> usize {
        let wanted = name(domain).to_string().to_lowercase();
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(queried, queried_kind)| *queried == wanted && queried_kind == kind)
            .count()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `test.` and `in-addr.arpa.` zones holding `zone`'s records.
fn catalog_of(zone: Zone) -> Catalog {
    let reverse = name(REVERSE);
    let (reverse_records, forward_records): (Vec<Record>, Vec<Record>) = zone
        .records
        .into_iter()
        .partition(|record| reverse.zone_of(&record.name));
    let test_zone = name(ORIGIN);
    let mut zones: Vec<(Name, Vec<Record>)> =
        vec![(test_zone.clone(), Vec::new()), (reverse, reverse_records)];
    for record in forward_records {
        let origin = if test_zone.zone_of(&record.name) {
            test_zone.clone()
        } else {
            record.name.trim_to(2)
        };
        match zones.iter_mut().find(|(zone, _)| *zone == origin) {
            Some((_, records)) => records.push(record),
            None => zones.push((origin, vec![record])),
        }
    }
    let mut catalog = Catalog::new();
    for (origin, records) in zones {
        let mut handler: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            name("ns.test."),
            name("hostmaster.test."),
            1,
            3_600,
            600,
            86_400,
            60,
        );
        assert!(handler.upsert_mut(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), 1));
        for record in records {
            assert!(
                handler.upsert_mut(record, 1),
                "dns test server: record refused"
            );
        }
        let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
        catalog.upsert(LowerName::new(&origin), vec![handler]);
    }
    catalog
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn bind_pair() -> (StdUdpSocket, StdTcpListener) {
    for _ in 0..50 {
        let Ok(udp) = StdUdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else {
            continue;
        };
        if let Ok(tcp) = StdTcpListener::bind(addr) {
            return (udp, tcp);
        }
    }
    panic!("dns test server: no free port for UDP and TCP");
}
