//! The direct router: claimed recipients are grouped by domain into one queue per domain, each
//! drained by a few workers that resolve the domain's mail exchangers once (through `dns.rs`),
//! ask its MTA-STS policy once (`mtasts`, applied by `direct_sts.rs`: which hosts, what TLS),
//! connect to the first that answers on `[direct] port` and carry many messages per session,
//! within the domain's connection cap, per-connection limit and rate (presets and overrides in
//! `direct_policy.rs`), slowing down when the domain pushes back. In mixed mode it hands what a
//! relay can fix to the relays through the dispatcher. Never touches SQL or picks relays itself.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::direct_policy::{
    Backoff, Limits, MixedRoute, PortWatch, Signal, limits_for, mixed_route,
};
use super::direct_sts::{self, HostTls};
use super::dns::{Destination, DnsError, MxResolver};
use super::job::{Job, compose_for, finish};
use super::outcome::{Attempt, local_reply};
use super::progress::Event;
use super::shared::{Control, Shared};
use super::smtp::{Message, Outcome, Session, Target};
use crate::campaign::{Campaign, DomainLimitsSpec, Security};
use crate::mtasts::{self, Policies, Policy};
use crate::recipients::EmailAddress;
use crate::store::{Reply, State, Transition, now_ms};

/// How long an idle worker keeps its session for more recipients of its domain.
const IDLE_SESSION: Duration = Duration::from_secs(1);
/// A new worker is started for a domain when its queue holds more than this per worker.
const QUEUE_PER_WORKER: usize = 8;
/// A connection not ready after this long gets a sibling (see `connect_while_needed`).
const SLOW_CONNECT: Duration = Duration::from_secs(1);

struct DomainState {
    queue: VecDeque<Job>,
    workers: u32,
    /// Sessions open to the domain's mail servers now.
    live: u32,
    /// Known once the domain's MX hosts are (the presets match on them).
    limits: Option<Limits>,
    backoff: Backoff,
    bucket: super::throttle::TokenBucket,
}

struct Domain {
    name: String,
    route: usize,
    state: Mutex<DomainState>,
    more: Notify,
}

impl Domain {
    fn lock(&self) -> MutexGuard<'_, DomainState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(super) struct Direct {
    resolver: Arc<MxResolver>,
    /// The recipient domains' MTA-STS policies (issue #23), each discovered once a run.
    policies: Policies<MxResolver>,
    /// `[direct] ca_file`: trusted beside the public roots where a policy requires verified TLS.
    ca_pem: Option<Vec<u8>>,
    port: u16,
    helo: String,
    tls_fallback: bool,
    backoff_pause: Duration,
    overrides: Vec<DomainLimitsSpec>,
    mixed: bool,
    max_attempts: u32,
    domains: Mutex<HashMap<String, Arc<Domain>>>,
    next_route: AtomicUsize,
    watch: Mutex<PortWatch>,
    blocked: Mutex<Option<String>>,
    closing: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Direct {
    /// The router of a campaign; its progress routes are numbered from `first_route` (after the
    /// relays'). MTA-STS policies are cached in the database at `db`.
    pub fn new(campaign: &Campaign, first_route: usize, db: &Path) -> Result<Direct, String> {
        let spec = &campaign.direct;
        let resolver = Arc::new(
            MxResolver::new(&spec.nameservers, spec.dns_timeout_secs)
                .map_err(|error| error.to_string())?,
        );
        let ca_pem = match &spec.ca_file {
            Some(path) => Some(mtasts::read_ca_file(path)?),
            None => None,
        };
        let policies = Policies::new(
            Arc::clone(&resolver),
            mtasts::Settings {
                db: db.to_path_buf(),
                ca_pem: ca_pem.clone(),
                https_port: spec.mta_sts_port,
                timeout: Duration::from_secs(u64::from(spec.mta_sts_timeout_secs)),
            },
        );
        let overrides = spec
            .domains
            .iter()
            .map(|domain| DomainLimitsSpec {
                // The user may write the Unicode form; queues key on the ASCII one.
                name: ascii_domain(&domain.name).unwrap_or_else(|| domain.name.clone()),
                ..domain.clone()
            })
            .collect();
        Ok(Direct {
            resolver,
            policies,
            ca_pem,
            port: spec.port,
            helo: super::shared::helo_name(campaign),
            tls_fallback: spec.tls_fallback,
            backoff_pause: Duration::from_secs(u64::from(spec.backoff_pause_secs)),
            overrides,
            mixed: campaign.delivery.mode == crate::campaign::Mode::Mixed,
            max_attempts: campaign.delivery.max_attempts,
            domains: Mutex::new(HashMap::new()),
            next_route: AtomicUsize::new(first_route),
            watch: Mutex::new(PortWatch::default()),
            blocked: Mutex::new(None),
            closing: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
        })
    }

    /// Why the run cannot go on directly (port 25 blocked), if that was found.
    pub fn blocked(&self) -> Option<String> {
        lock(&self.blocked).clone()
    }

    /// The user resumed: look at the network afresh.
    pub fn unblock(&self) {
        *lock(&self.blocked) = None;
        *lock(&self.watch) = PortWatch::default();
    }

    /// Queues one claimed recipient for its domain, starting a worker when the domain can use
    /// another connection.
    /// Starts one more worker for `domain` (its slot already counted in `workers`).
    fn spawn_worker(self: &Arc<Self>, shared: &Arc<Shared>, domain: &Arc<Domain>) {
        let handle = tokio::spawn(work(
            Arc::clone(self),
            Arc::clone(shared),
            Arc::clone(domain),
        ));
        let mut workers = lock(&self.workers);
        workers.retain(|worker| !worker.is_finished());
        workers.push(handle);
    }

    pub fn enqueue(self: &Arc<Self>, shared: &Arc<Shared>, job: Job) {
        let Some(domain_name) = ascii_domain_of(&job.claimed.email) else {
            finish(
                shared,
                usize::MAX,
                &job,
                Attempt::Permanent(local_reply("the address is not valid")),
                None,
            );
            return;
        };
        if self.mixed && self.blocked().is_some() {
            self.to_relay(shared, job, None);
            return;
        }
        let domain = self.domain(shared, &domain_name);
        let mut state = domain.lock();
        let now = Instant::now();
        if let Some(until) = state.backoff.paused(now) {
            drop(state);
            self.wait_out_pause(shared, &domain, job, until);
            return;
        }
        state.queue.push_back(job);
        let allowed = state
            .backoff
            .connections(state.limits.map_or(1, |limits| limits.connections));
        let wanted = state.queue.len().div_ceil(QUEUE_PER_WORKER) as u32;
        if state.workers < allowed && state.workers < wanted.max(1) {
            state.workers += 1;
            drop(state);
            self.spawn_worker(shared, &domain);
        } else {
            drop(state);
            domain.more.notify_one();
        }
    }

    fn domain(&self, shared: &Shared, name: &str) -> Arc<Domain> {
        let mut domains = lock(&self.domains);
        if let Some(domain) = domains.get(name) {
            return Arc::clone(domain);
        }
        let route = self.next_route.fetch_add(1, Ordering::SeqCst);
        shared.event(Event::NewRoute {
            route,
            name: name.to_string(),
        });
        let domain = Arc::new(Domain {
            name: name.to_string(),
            route,
            state: Mutex::new(DomainState {
                queue: VecDeque::new(),
                workers: 0,
                live: 0,
                limits: None,
                backoff: Backoff::new(self.backoff_pause),
                bucket: super::throttle::TokenBucket::per_hour(0, Instant::now()),
            }),
            more: Notify::new(),
        });
        domains.insert(name.to_string(), Arc::clone(&domain));
        domain
    }

    /// Gives every queued recipient back to `pending` (pause, stop, port 25 blocked).
    pub fn release_all(&self, shared: &Shared) {
        let domains: Vec<Arc<Domain>> = lock(&self.domains).values().cloned().collect();
        for domain in domains {
            let jobs: Vec<Job> = domain.lock().queue.drain(..).collect();
            for job in jobs {
                shared.release(job);
            }
            domain.more.notify_waiters();
        }
    }

    /// The run is over: queued recipients go back to `pending`, workers finish what they are
    /// sending and end.
    pub async fn shut_down(&self, shared: &Shared) {
        self.closing.store(true, Ordering::SeqCst);
        self.release_all(shared);
        let workers: Vec<JoinHandle<()>> = lock(&self.workers).drain(..).collect();
        for worker in workers {
            let _ = worker.await;
        }
        // Anything queued while the last workers ended.
        self.release_all(shared);
    }

    /// Mixed mode: the relays take over. A failed direct attempt stays in the history.
    fn to_relay(&self, shared: &Shared, mut job: Job, tried: Option<(&str, Reply)>) {
        if let Some((host, reply)) = tried {
            job.claimed.attempts = job.claimed.attempts.saturating_add(1);
            tracing::info!(recipient = %job.claimed.email, %host, reply = %reply.text, "direct delivery failed; handing over to the relays");
            let _ = shared.writer.write(Transition {
                id: job.claimed.id,
                to: State::Sending,
                attempts: job.claimed.attempts,
                next_attempt_at_ms: 0,
                route: Some(host.to_string()),
                reply: Some(reply),
                dead_address: false,
            });
        }
        job.to_relay = true;
        if let Err(returned) = shared.bounced.send(job) {
            shared.release(returned.0);
        }
    }

    /// A recipient of a domain that asked us to slow down: direct mode holds it for the pause
    /// without spending an attempt; mixed mode hands it to the relays at once, since direct
    /// first and the relays when direct cannot deliver is what mixed mode promises (issue #12:
    /// a domain answering 451 to everything otherwise held its recipients for pauses that
    /// doubled past eight minutes).
    fn wait_out_pause(&self, shared: &Shared, domain: &Domain, job: Job, until: Instant) {
        if self.mixed {
            self.to_relay(shared, job, None);
        } else {
            hold_paused(shared, domain, job, until);
        }
    }

    /// Records a direct attempt, or in mixed mode hands the recipient to the relays when a
    /// relay can fix what went wrong.
    fn settle(&self, shared: &Shared, domain: &Domain, job: Job, attempt: Attempt, host: &str) {
        if self.mixed
            && mixed_route(&attempt, job.claimed.attempts, self.max_attempts) == MixedRoute::Relay
        {
            let reply = reply_of(&attempt);
            self.to_relay(shared, job, Some((host, reply)));
            return;
        }
        finish(shared, domain.route, &job, attempt, Some(host));
    }

    /// No server of the domain answered: the recipient is deferred (direct), goes to the relays
    /// (mixed), or waits for the user when the network blocks port 25.
    fn unreachable(&self, shared: &Shared, domain: &Domain, job: Job, reason: &str) {
        if self.mixed {
            self.to_relay(shared, job, Some((&domain.name, local_reply(reason))));
        } else if self.blocked().is_some() {
            shared.release(job);
        } else if !lock(&self.watch).any_success()
            && job.claimed.attempts.saturating_add(1) >= self.max_attempts
        {
            // Until some server answers, an unreachable host may be our own network (port 25
            // filtered, link down): nobody's last attempt is spent on that.
            let until = Instant::now() + shared.delivery.retry_delay(job.claimed.attempts.max(1));
            let wait = until
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            hold(
                shared,
                domain,
                job,
                until,
                format!(
                    "{reason}; no mail server has answered yet in this run, trying again in {wait} s"
                ),
            );
        } else {
            finish(
                shared,
                domain.route,
                &job,
                Attempt::Temporary(local_reply(reason)),
                None,
            );
        }
    }

    /// How to reach one MX address: opportunistic STARTTLS, or (`verified`, an MTA-STS
    /// policy's demand) STARTTLS required with a certificate valid for `host`, never plain text.
    fn target(&self, host: &str, address: std::net::IpAddr, verified: bool) -> Target {
        Target {
            route: host.to_string(),
            host: host.to_string(),
            port: self.port,
            security: if verified {
                Security::StartTls
            } else {
                Security::None
            },
            helo: self.helo.clone(),
            credentials: None,
            ca_pem: if verified { self.ca_pem.clone() } else { None },
            address: Some(address),
            opportunistic_tls: (!verified).then_some(self.tls_fallback),
        }
    }
}

/// The recipient's domain in its DNS form.
fn ascii_domain_of(email: &str) -> Option<String> {
    EmailAddress::parse(email)
        .ok()
        .map(|address| address.domain().to_string())
}

fn ascii_domain(name: &str) -> Option<String> {
    ascii_domain_of(&format!("postmaster@{name}"))
}

fn reply_of(attempt: &Attempt) -> Reply {
    match attempt {
        Attempt::Accepted(reply)
        | Attempt::Temporary(reply)
        | Attempt::Permanent(reply)
        | Attempt::Uncertain(reply) => reply.clone(),
    }
}

/// Defers a recipient whose domain is paused, without spending an attempt.
fn hold_paused(shared: &Shared, domain: &Domain, job: Job, until: Instant) {
    let wait = until
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(1);
    let reason = format!(
        "{} asked us to slow down; waiting {wait} s before trying again",
        domain.name
    );
    hold(shared, domain, job, until, reason);
}

/// Defers a recipient until `until` without spending an attempt.
fn hold(shared: &Shared, domain: &Domain, job: Job, until: Instant, reason: String) {
    let wait = until.saturating_duration_since(Instant::now());
    let reply = local_reply(reason);
    let _ = shared.writer.write(Transition {
        id: job.claimed.id,
        to: State::Deferred,
        attempts: job.claimed.attempts,
        next_attempt_at_ms: now_ms() + wait.as_millis() as i64,
        route: None,
        reply: Some(reply.clone()),
        dead_address: false,
    });
    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
    shared.event(Event::Outcome {
        route: domain.route,
        email: job.claimed.email.clone(),
        to: State::Deferred,
        uncertain: false,
        reply: Some(reply),
    });
}

/// Takes every queued recipient of a domain.
fn drain(domain: &Domain) -> Vec<Job> {
    domain.lock().queue.drain(..).collect()
}

enum Next {
    Job(Job),
    /// Nothing to do: the worker has ended (its count is already given back).
    Done,
}

/// Takes the next recipient, waiting a little for more when the queue is empty. The worker's
/// slot is given back under the same lock that finds the queue empty, so a recipient queued at
/// that moment always finds a worker.
async fn next_job(direct: &Direct, domain: &Domain, wait: bool) -> Next {
    for round in 0..2 {
        {
            let mut state = domain.lock();
            if let Some(job) = state.queue.pop_front() {
                return Next::Job(job);
            }
            if round == 1 || !wait || direct.closing.load(Ordering::SeqCst) {
                state.workers = state.workers.saturating_sub(1);
                return Next::Done;
            }
        }
        let _ = tokio::time::timeout(IDLE_SESSION, domain.more.notified()).await;
    }
    let mut state = domain.lock();
    state.workers = state.workers.saturating_sub(1);
    Next::Done
}

fn give_back_slot(domain: &Domain) {
    let mut state = domain.lock();
    state.workers = state.workers.saturating_sub(1);
}

/// One worker of a domain: resolve, connect, send queued recipients, reconnect as needed.
async fn work(direct: Arc<Direct>, shared: Arc<Shared>, domain: Arc<Domain>) {
    loop {
        if direct.closing.load(Ordering::SeqCst) || shared.control() != Control::Run {
            give_back_slot(&domain);
            for job in drain(&domain) {
                shared.release(job);
            }
            return;
        }
        let destination = match direct.resolver.destination(&domain.name).await {
            Ok(destination) => destination,
            Err(error) => {
                give_back_slot(&domain);
                for job in drain(&domain) {
                    match &error {
                        // RFC 7505 §4.2 and RFC 5321 §5.1: nothing to retry, and no relay
                        // can deliver to a domain that takes no mail.
                        DnsError::Permanent(reason) => finish(
                            &shared,
                            domain.route,
                            &job,
                            Attempt::Permanent(local_reply(reason.clone())),
                            None,
                        ),
                        DnsError::Temporary(reason) => direct.settle(
                            &shared,
                            &domain,
                            job,
                            Attempt::Temporary(local_reply(reason.clone())),
                            &domain.name,
                        ),
                    }
                }
                return;
            }
        };
        let limits = {
            let mut state = domain.lock();
            match state.limits {
                Some(limits) => limits,
                None => {
                    let first = destination
                        .hosts
                        .first()
                        .map(|host| host.name.clone())
                        .unwrap_or_default();
                    let limits = limits_for(&domain.name, &first, &direct.overrides);
                    state.limits = Some(limits);
                    state.bucket = super::throttle::TokenBucket::per_hour(
                        limits.rate_per_hour,
                        Instant::now(),
                    );
                    limits
                }
            }
        };
        let policy = direct.policies.policy(&domain.name).await;
        let Some(opened) =
            connect(&direct, &shared, &domain, &destination, policy.as_deref()).await
        else {
            return;
        };
        domain.lock().live += 1;
        let go_on = carry(&direct, &shared, &domain, opened, limits).await;
        domain.lock().live -= 1;
        if !go_on {
            return;
        }
    }
}

/// A session open to one of a domain's mail servers.
struct Opened {
    session: Session,
    permit: OwnedSemaphorePermit,
    host: String,
    /// What a testing MTA-STS policy would have refused on this session, added to the reply of
    /// each message it delivers.
    note: Option<String>,
}

/// Opens a session to the first reachable mail server its MTA-STS `policy` allows, with the
/// TLS it demands. On failure every queued recipient of the domain is settled (it would fail
/// the same way) and the worker ends.
async fn connect(
    direct: &Arc<Direct>,
    shared: &Arc<Shared>,
    domain: &Arc<Domain>,
    destination: &Destination,
    policy: Option<&Policy>,
) -> Option<Opened> {
    let plan = direct_sts::plan(&domain.name, destination, policy);
    let enforced = policy.filter(|policy| policy.mode == mtasts::Mode::Enforce);
    if plan.is_empty()
        && let Some(policy) = enforced
    {
        let reason = direct_sts::no_listed_mx(&domain.name, policy, destination);
        tracing::warn!(domain = %domain.name, "MTA-STS: no MX host is listed by the enforce policy");
        give_back_slot(domain);
        settle_unreachable(direct, shared, domain, &reason);
        return None;
    }
    let Ok(permit) = Arc::clone(&shared.connections).acquire_owned().await else {
        give_back_slot(domain);
        return None;
    };
    let mut kinds = Vec::new();
    let mut reasons = Vec::new();
    for (host, tls) in plan {
        if host.addresses.is_empty() {
            reasons.push(host.problem.clone().unwrap_or_else(|| host.name.clone()));
            continue;
        }
        for address in &host.addresses {
            let Some((connected, note)) =
                open_one(direct, shared, domain, &host.name, *address, &tls).await
            else {
                // The run ends or the domain's other sessions took every recipient.
                drop(permit);
                give_back_slot(domain);
                return None;
            };
            match connected {
                Ok(session) => {
                    lock(&direct.watch).success();
                    shared.event(Event::Connections {
                        route: domain.route,
                        delta: 1,
                    });
                    return Some(Opened {
                        session,
                        permit,
                        host: host.name.clone(),
                        note,
                    });
                }
                Err(error) => {
                    tracing::info!(host = %host.name, %address, %error, "mail server not reachable; trying the next");
                    if let Some(kind) = error.network_kind() {
                        kinds.push(kind);
                    }
                    reasons.push(format!("{} ({address}): {error}", host.name));
                }
            }
        }
    }
    drop(permit);
    give_back_slot(domain);
    if domain.lock().live > 0 {
        // Other sessions of the domain work: this connection's failure is its own, and they
        // carry the queue.
        tracing::info!(domain = %domain.name, reasons = %reasons.join("; "), "one connection failed; the domain's other sessions go on");
        return None;
    }
    let all_network = kinds.len() == reasons.len();
    if all_network && let Some(verdict) = lock(&direct.watch).unreachable(&domain.name, &kinds) {
        tracing::warn!(%verdict, "port 25 looks blocked");
        *lock(&direct.blocked) = Some(verdict);
    }
    let reason = if enforced.is_some() {
        direct_sts::no_secure_mx(&domain.name, &reasons)
    } else {
        format!(
            "no mail server of {} could be reached on port {}: {}",
            domain.name,
            direct.port,
            reasons.join("; ")
        )
    };
    settle_unreachable(direct, shared, domain, &reason);
    None
}

/// No server of the domain can take its mail now: the route says why and every queued
/// recipient is deferred, handed to the relays (mixed) or held.
fn settle_unreachable(direct: &Direct, shared: &Shared, domain: &Domain, reason: &str) {
    shared.event(Event::RouteDown {
        route: domain.route,
        reason: reason.to_string(),
    });
    for job in drain(domain) {
        direct.unreachable(shared, domain, job, reason);
    }
}

/// Opens a session to one MX address with the TLS `tls` asks for; a testing policy's trial that
/// fails at TLS is noted and tried again opportunistically. None when the session stopped
/// being needed.
async fn open_one(
    direct: &Arc<Direct>,
    shared: &Arc<Shared>,
    domain: &Arc<Domain>,
    host: &str,
    address: std::net::IpAddr,
    tls: &HostTls,
) -> Option<(Result<Session, super::smtp::ConnectError>, Option<String>)> {
    match tls {
        HostTls::Opportunistic { note } => {
            let target = direct.target(host, address, false);
            let connected = connect_while_needed(direct, domain, &target, shared).await?;
            Some((connected, note.clone()))
        }
        HostTls::Required => {
            let target = direct.target(host, address, true);
            let connected = connect_while_needed(direct, domain, &target, shared).await?;
            Some((connected, None))
        }
        HostTls::Trial => {
            let strict = direct.target(host, address, true);
            match connect_while_needed(direct, domain, &strict, shared).await? {
                Err(super::smtp::ConnectError::Tls(reason)) => {
                    let note = direct_sts::trial_note(host, &reason);
                    tracing::warn!(domain = %domain.name, %note, "MTA-STS testing policy would refuse this server");
                    let target = direct.target(host, address, false);
                    let connected = connect_while_needed(direct, domain, &target, shared).await?;
                    Some((connected, Some(note)))
                }
                other => Some((other, None)),
            }
        }
    }
}

/// Opens a session to one address unless it stops being needed first: a server that accepts
/// and never greets may hold the greeting for the whole command timeout (RFC 5321 §4.5.3.2.1),
/// while the domain's other sessions empty its queue or the run ends.
async fn connect_while_needed(
    direct: &Arc<Direct>,
    domain: &Arc<Domain>,
    target: &Target,
    shared: &Arc<Shared>,
) -> Option<Result<Session, super::smtp::ConnectError>> {
    let started = Instant::now();
    let mut helped = false;
    let connecting = Session::connect(target, shared.timeouts);
    tokio::pin!(connecting);
    loop {
        tokio::select! {
            result = &mut connecting => return Some(result),
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let mut state = domain.lock();
                if (state.live > 0 && state.queue.is_empty())
                    || direct.closing.load(Ordering::SeqCst)
                {
                    return None;
                }
                // Slow to open: one more worker (within the domain's cap) tries another
                // connection, so this one costs only itself.
                let allowed = state
                    .backoff
                    .connections(state.limits.map_or(1, |limits| limits.connections));
                if !helped
                    && started.elapsed() > SLOW_CONNECT
                    && !state.queue.is_empty()
                    && state.workers < allowed
                {
                    helped = true;
                    state.workers += 1;
                    drop(state);
                    direct.spawn_worker(shared, domain);
                }
            }
        }
    }
}

/// Sends the domain's queued recipients over one session. Returns true to reconnect (the
/// session ended with recipients left), false when the worker is done.
// Long because the `next` and `done` closures handed to `send_many` share the session's
// state (the pause, the count handed, the jobs left unattempted) with the loop around them;
// what does not need that state is in `wait_for_pace` and `observe`.
async fn carry(
    direct: &Direct,
    shared: &Shared,
    domain: &Domain,
    opened: Opened,
    limits: Limits,
) -> bool {
    let Opened {
        mut session,
        permit,
        host,
        note,
    } = opened;
    let host = host.as_str();
    let close = |session: Session, permit: OwnedSemaphorePermit| async move {
        session.quit().await;
        drop(permit);
        shared.event(Event::Connections {
            route: domain.route,
            delta: -1,
        });
    };
    let carried = AtomicU32::new(0);
    let reached = |carried: u32| {
        limits.messages_per_connection > 0 && carried >= limits.messages_per_connection
    };
    loop {
        let job = match next_job(direct, domain, true).await {
            Next::Job(job) => job,
            Next::Done => {
                close(session, permit).await;
                return false;
            }
        };
        if shared.control() != Control::Run || direct.closing.load(Ordering::SeqCst) {
            shared.release(job);
            for job in drain(domain) {
                shared.release(job);
            }
            give_back_slot(domain);
            close(session, permit).await;
            return false;
        }
        wait_for_pace(domain).await;
        let build = |job: &Job| match compose_for(shared, &job.claimed) {
            Ok((from, to, data)) => Some(Message { from, to, data }),
            Err(not_built) => {
                not_built.record(shared, domain.route, job);
                None
            }
        };
        let Some(message) = build(&job) else {
            continue;
        };
        let paused: Mutex<Option<Instant>> = Mutex::new(None);
        let mut not_attempted = Vec::new();
        let handed = AtomicU32::new(carried.load(Ordering::SeqCst) + 1);
        // The next recipient of the domain, when one is queued, its pace allows it now and
        // the session should go on: written behind this message's final ".".
        let next = || {
            loop {
                if reached(handed.load(Ordering::SeqCst))
                    || lock(&paused).is_some()
                    || shared.control() != Control::Run
                    || direct.closing.load(Ordering::SeqCst)
                {
                    return None;
                }
                let job = {
                    let mut state = domain.lock();
                    if !state.bucket.wait_time(Instant::now()).is_zero() {
                        return None;
                    }
                    let job = state.queue.pop_front()?;
                    state.bucket.take(Instant::now());
                    job
                };
                if let Some(message) = build(&job) {
                    handed.fetch_add(1, Ordering::SeqCst);
                    return Some((job, message));
                }
            }
        };
        let done = |job: Job, outcome: Outcome| {
            let attempt = match outcome {
                Outcome::Attempted(attempt) => attempt,
                Outcome::NotAttempted(_) => {
                    // The server acknowledged nothing of it: first on a fresh session, with no
                    // attempt spent.
                    not_attempted.push(job);
                    return;
                }
            };
            carried.fetch_add(1, Ordering::SeqCst);
            let attempt = with_note(attempt, note.as_deref());
            if let Some(until) = observe(direct, shared, domain, host, limits, job, attempt) {
                *lock(&paused) = Some(until);
            }
        };
        session.send_many(job, message, next, done).await;
        let stale = !not_attempted.is_empty();
        {
            let mut state = domain.lock();
            for job in not_attempted.into_iter().rev() {
                state.queue.push_front(job);
            }
        }
        let paused = *lock(&paused);
        if let Some(until) = paused {
            // RFC 5321 §4.5.4.1 asks senders not to hammer a server that defers: the whole
            // domain waits, and its queued recipients with it, without spending attempts.
            tracing::warn!(domain = %domain.name, "the domain pushes back; slowing down");
            for job in drain(domain) {
                direct.wait_out_pause(shared, domain, job, until);
            }
            give_back_slot(domain);
            close(session, permit).await;
            return false;
        }
        if !session.usable() {
            drop(session);
            drop(permit);
            shared.event(Event::Connections {
                route: domain.route,
                delta: -1,
            });
            // A message left unattempted goes first on a fresh session.
            return stale || reconnect_or_end(domain);
        }
        if reached(carried.load(Ordering::SeqCst)) {
            close(session, permit).await;
            return reconnect_or_end(domain);
        }
    }
}

/// A delivered message's reply with a testing MTA-STS policy's note after it, so the
/// recipient's history says what enforcement would have refused (RFC 8461 §5).
fn with_note(attempt: Attempt, note: Option<&str>) -> Attempt {
    match (attempt, note) {
        (Attempt::Accepted(mut reply), Some(note)) => {
            reply.text = format!("{} [{note}]", reply.text);
            Attempt::Accepted(reply)
        }
        (attempt, _) => attempt,
    }
}

/// Waits until the domain's own pace (on top of the campaign's) allows a message, and takes it.
async fn wait_for_pace(domain: &Domain) {
    loop {
        let wait = domain.lock().bucket.wait_time(Instant::now());
        if wait.is_zero() {
            break;
        }
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
    }
    domain.lock().bucket.take(Instant::now());
}

/// Feeds one message's outcome to the domain's backoff, records it, and reports the route's
/// health; returns until when the domain must now pause, if it must.
fn observe(
    direct: &Direct,
    shared: &Shared,
    domain: &Domain,
    host: &str,
    limits: Limits,
    job: Job,
    attempt: Attempt,
) -> Option<Instant> {
    let signal = match &attempt {
        Attempt::Accepted(_) => Signal::Success,
        Attempt::Temporary(reply) if reply.code == Some(421) => Signal::Closing,
        Attempt::Temporary(_) => Signal::Temporary,
        Attempt::Permanent(_) | Attempt::Uncertain(_) => Signal::Neutral,
    };
    let (paused_until, description) = {
        let mut state = domain.lock();
        let now = Instant::now();
        let now_paused = state.backoff.observe(signal, now);
        let description = state.backoff.describe(limits.connections, now);
        (now_paused.map(|_| state.backoff.paused_until), description)
    };
    direct.settle(shared, domain, job, attempt, host);
    match description {
        Some(reason) => shared.event(Event::RouteDown {
            route: domain.route,
            reason,
        }),
        None => shared.event(Event::RouteUp {
            route: domain.route,
        }),
    }
    paused_until.flatten()
}

/// After a session ended early: go on if recipients are left, else give the slot back.
fn reconnect_or_end(domain: &Domain) -> bool {
    let mut state = domain.lock();
    if state.queue.is_empty() {
        state.workers = state.workers.saturating_sub(1);
        false
    } else {
        true
    }
}
