//! Sending benchmark (issue #3): Herald against Postfix's own load generator on the same sink,
//! in the same run. `smtp-source -d -s 50 -m N -l SIZE` (SIZE = Herald's message size) sets the
//! reference rate; Herald sends N personalized, tracked messages with 50 connections to the
//! same `smtp-sink`. Target: at least 0.8x the reference (issue #12). Then a memory run: peak RSS while
//! sending 200,000 recipients, target under 150 MiB.
//!
//! The DKIM run (issue #12) sends the same campaign signed with an RSA-2048 key right after the
//! unsigned one, into the same sink: target signed at least 0.7x unsigned. It also prints the
//! CPU time Herald spent per message in each, so the cost of a signature is visible on its own.
//!
//! Durability (issue #24): with `HERALD_BENCH_BASELINE=/path/to/an/older/herald` the bench also
//! sends the same campaign alternately with that binary and this one, into the same sink, and
//! prints the median rate of each and their ratio (target: this one >= 0.9x the baseline); with
//! `strace` installed it counts each binary's fsync/fdatasync calls per 1,000 messages.
//!
//! Run: `cargo bench --bench send` (needs Debian's `postfix` for smtp-sink/smtp-source).
//! Sizes: HERALD_BENCH_ROUNDS (default 3, the durability comparison's alternations), HERALD_BENCH_MESSAGES (default 20000), HERALD_BENCH_MEMORY_RECIPIENTS (default 200000,
//! 0 skips the memory run), HERALD_BENCH_DKIM (default 1; 0 skips the signed run).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/lib/postfix/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
}

struct Sink(Child);

impl Sink {
    /// The sink's CPU time so far (user + system), from `/proc/PID/stat`: the other half of
    /// what a message costs this machine, which bounds what signing can reach on its cores.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).ok()?;
        // Fields after the command name (which is in parentheses and may hold spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index)?.parse::<f64>().ok();
        // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0);
        Some((ticks(11)? + ticks(12)?) / ticks_per_second)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(port: u16) -> Sink {
    let sink = find_tool("smtp-sink").expect("smtp-sink not found: apt-get install postfix");
    let mut command = Command::new(sink);
    if is_root() {
        command.args(["-u", "nobody"]);
    }
    let child = command
        .arg(format!("127.0.0.1:{port}"))
        .arg("1024")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Sink(child)
}

/// A newsletter: about 10 KB of HTML and 3 KB of text, personalized in several places.
fn write_campaign(dir: &Path, recipients: usize, port: u16) -> PathBuf {
    let mut html = String::from("<html><body><h1>Hello {{ first_name }} from {{ city }}</h1>\n");
    let mut n = 0;
    while html.len() < 10_000 {
        html.push_str(&format!(
            "<p>Item {n}: a carefully chosen product for {{{{ first_name }}}}, with a \
             <a href=\"https://shop.example/p/{n}?u={{{{ url(email) }}}}\">link to its page</a>.</p>\n"
        ));
        n += 1;
    }
    html.push_str("</body></html>\n");
    let mut text = String::from("Hello {{ first_name }} from {{ city }}\n\n");
    let mut n = 0;
    while text.len() < 3_000 {
        text.push_str(&format!("Item {n}: https://shop.example/p/{n}\n"));
        n += 1;
    }
    std::fs::write(dir.join("body.html"), html).unwrap();
    std::fs::write(dir.join("body.txt"), text).unwrap();
    let mut csv = String::with_capacity(recipients * 48);
    csv.push_str("email,first_name,city\n");
    for i in 0..recipients {
        csv.push_str(&format!(
            "reader{i}@d{}.example,Reader{i},City{}\n",
            i % 100,
            i % 37
        ));
    }
    std::fs::write(dir.join("list.csv"), csv).unwrap();
    let campaign = dir.join("campaign.toml");
    std::fs::write(
        &campaign,
        format!(
            "[message]\nfrom = \"Bench <bench@herald.example>\"\nsubject = \"{{{{ first_name }}}}, this week's picks\"\n\
             html = \"body.html\"\ntext = \"body.txt\"\nunsubscribe = \"https://shop.example/u?e={{{{ url(email) }}}}\"\n\n\
             [recipients]\ncsv = \"list.csv\"\n\n[delivery]\nconnections = 50\n\n\
             [[relay]]\nname = \"sink\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n"
        ),
    )
    .unwrap();
    campaign
}

fn message_size(campaign: &Path) -> usize {
    let campaign = herald::campaign::Campaign::load(campaign).unwrap();
    let composer = herald::compose::Composer::new(&campaign)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    let fields = r#"{"first_name":"Reader1","city":"City1"}"#;
    let composed = composer
        .compose(&herald::compose::RecipientData {
            id: 1,
            email: "reader1@d1.example",
            fields_json: fields,
        })
        .unwrap();
    composed.bytes.len()
}

/// Runs a command under `/usr/bin/time -v`; returns wall time and peak RSS in KiB.
fn timed(command: &mut Command) -> (Duration, Option<u64>) {
    let (elapsed, peak, _) = timed_with_cpu(command);
    (elapsed, peak)
}

/// Like [`timed`], and the command's CPU time (user + system) when `/usr/bin/time` reports it.
fn timed_with_cpu(command: &mut Command) -> (Duration, Option<u64>, Option<f64>) {
    let started = Instant::now();
    let output = command.output().expect("run command");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(|value| value.trim().to_string())
    };
    let peak = field("Maximum resident set size (kbytes): ").and_then(|value| value.parse().ok());
    let cpu = field("User time (seconds): ")
        .and_then(|user| user.parse::<f64>().ok())
        .zip(field("System time (seconds): ").and_then(|system| system.parse::<f64>().ok()))
        .map(|(user, system)| user + system);
    (elapsed, peak, cpu)
}

/// This build's binary, the one under test.
fn this_herald() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_herald"))
}

fn herald_command(args: &[&str], measure_memory: bool) -> Command {
    binary_command(this_herald(), args, measure_memory)
}

fn binary_command(herald: &Path, args: &[&str], measure_memory: bool) -> Command {
    let mut command = if measure_memory && Path::new("/usr/bin/time").exists() {
        let mut command = Command::new("/usr/bin/time");
        command.arg("-v").arg(herald);
        command
    } else {
        Command::new(herald)
    };
    command.args(args).env("HERALD_LOG", "error");
    command
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let messages = env_number("HERALD_BENCH_MESSAGES", 20_000);
    let memory_recipients = env_number("HERALD_BENCH_MEMORY_RECIPIENTS", 200_000);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = start_sink(port);
    let campaign = write_campaign(dir.path(), messages, port);
    let size = message_size(&campaign);
    let campaign_arg = campaign.to_string_lossy().into_owned();
    let db = dir.path().join("bench.db").to_string_lossy().into_owned();

    let source = find_tool("smtp-source").expect("smtp-source not found: apt-get install postfix");
    let (reference, _) = timed(
        Command::new(source)
            .args([
                "-d",
                "-s",
                "50",
                "-m",
                &messages.to_string(),
                "-l",
                &size.to_string(),
            ])
            .args(["-f", "bench@herald.example", "-t", "reader@d1.example"])
            .arg(format!("127.0.0.1:{port}")),
    );
    let reference_rate = messages as f64 / reference.as_secs_f64();

    let (_, _) = timed(&mut herald_command(
        &["import", &campaign_arg, "--db", &db],
        false,
    ));
    let sink_before = sink.cpu_seconds();
    let (elapsed, peak, cpu) = timed_with_cpu(&mut herald_command(
        &["send", &campaign_arg, "--db", &db, "--ignore-dns"],
        true,
    ));
    let sink_cpu = sink_before
        .zip(sink.cpu_seconds())
        .map(|(before, after)| after - before);
    let rate = messages as f64 / elapsed.as_secs_f64();
    let ratio = rate / reference_rate;
    println!("message size: {size} bytes; {messages} messages, 50 connections, same smtp-sink");
    println!(
        "smtp-source -d -s 50: {:.2} s, {reference_rate:.0} msg/s",
        reference.as_secs_f64()
    );
    println!(
        "herald send:          {:.2} s, {rate:.0} msg/s (peak RSS {} MiB)",
        elapsed.as_secs_f64(),
        peak.map(|kib| (kib / 1024).to_string())
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "ratio herald/smtp-source: {ratio:.2} (target >= 0.80: {})",
        if ratio >= 0.8 { "met" } else { "NOT met" }
    );

    if env_number("HERALD_BENCH_DKIM", 1) > 0 {
        let unsigned = Run {
            rate,
            herald_cpu: cpu,
            sink_cpu,
        };
        signed_run(messages, &sink, port, &unsigned, reference_rate);
    }

    if let Some(baseline) = std::env::var_os("HERALD_BENCH_BASELINE") {
        let rounds = env_number("HERALD_BENCH_ROUNDS", 3).max(1);
        durability_comparison(messages, port, Path::new(&baseline), rounds);
    } else if let Some(fsyncs) = fsyncs_per_thousand(this_herald(), messages, port) {
        println!("fsync + fdatasync per 1,000 messages: {fsyncs:.1}");
    }

    if memory_recipients > 0 {
        let big = tempfile::tempdir().unwrap();
        let campaign = write_campaign(big.path(), memory_recipients, port);
        let campaign_arg = campaign.to_string_lossy().into_owned();
        let db = big.path().join("bench.db").to_string_lossy().into_owned();
        let (_, _) = timed(&mut herald_command(
            &["import", &campaign_arg, "--db", &db],
            false,
        ));
        let (elapsed, peak) = timed(&mut herald_command(
            &["send", &campaign_arg, "--db", &db, "--ignore-dns"],
            true,
        ));
        let peak_mib = peak.map(|kib| kib as f64 / 1024.0);
        println!(
            "memory run: {memory_recipients} recipients in {:.1} s ({:.0} msg/s), peak RSS {} (target < 150 MiB: {})",
            elapsed.as_secs_f64(),
            memory_recipients as f64 / elapsed.as_secs_f64(),
            peak_mib
                .map(|mib| format!("{mib:.0} MiB"))
                .unwrap_or_else(|| "unknown".into()),
            match peak_mib {
                Some(mib) if mib < 150.0 => "met",
                Some(_) => "NOT met",
                None => "unknown",
            }
        );
    }
}

/// One send's rate and the CPU seconds Herald and the sink spent on it.
struct Run {
    rate: f64,
    herald_cpu: Option<f64>,
    sink_cpu: Option<f64>,
}

/// The same campaign signed with RSA-2048, against the unsigned run just made and smtp-source.
/// Besides the ratio it prints the ceiling this machine puts on it: its cores divided by the
/// CPU a signed message costs Herald and the sink together, as a share of the unsigned rate.
fn signed_run(messages: usize, sink: &Sink, port: u16, unsigned: &Run, reference_rate: f64) {
    let dir = tempfile::tempdir().unwrap();
    let campaign = write_campaign(dir.path(), messages, port);
    let key = dir.path().join("dkim.pem");
    let generated = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl is needed for the signed run");
    assert!(generated.status.success(), "openssl could not make a key");
    let mut text = std::fs::read_to_string(&campaign).unwrap();
    text.push_str(
        "\n[dkim]\ndomain = \"herald.example\"\nselector = \"s1\"\nprivate_key = \"dkim.pem\"\n",
    );
    std::fs::write(&campaign, text).unwrap();
    let campaign_arg = campaign.to_string_lossy().into_owned();
    let db = dir.path().join("bench.db").to_string_lossy().into_owned();
    let (_, _) = timed(&mut herald_command(
        &["import", &campaign_arg, "--db", &db],
        false,
    ));
    let sink_before = sink.cpu_seconds();
    let (elapsed, _, cpu) = timed_with_cpu(&mut herald_command(
        &["send", &campaign_arg, "--db", &db, "--ignore-dns"],
        true,
    ));
    let sink_cpu = sink_before
        .zip(sink.cpu_seconds())
        .map(|(before, after)| after - before);
    let rate = messages as f64 / elapsed.as_secs_f64();
    let ratio = rate / unsigned.rate;
    let per_message = |cpu: Option<f64>| {
        cpu.map(|seconds| format!("{:.0} µs", seconds * 1e6 / messages as f64))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "herald send, DKIM rsa-sha256 (2048): {:.2} s, {rate:.0} msg/s ({:.2}x smtp-source)",
        elapsed.as_secs_f64(),
        rate / reference_rate
    );
    println!(
        "herald CPU per message: unsigned {}, signed {}",
        per_message(unsigned.herald_cpu),
        per_message(cpu)
    );
    println!(
        "smtp-sink CPU per message: unsigned run {}, signed run {}",
        per_message(unsigned.sink_cpu),
        per_message(sink_cpu)
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    if let (Some(herald), Some(sink)) = (cpu, sink_cpu) {
        let ceiling = cores * messages as f64 / (herald + sink);
        println!(
            "CPU ceiling for the signed run on {cores} cores: {ceiling:.0} msg/s = {:.2}x unsigned; \
             the signed run reached {:.2} of it",
            ceiling / unsigned.rate,
            rate / ceiling
        );
    }
    println!(
        "ratio signed/unsigned: {ratio:.2} (target >= 0.70: {})",
        if ratio >= 0.7 { "met" } else { "NOT met" }
    );
}

/// One fresh send of `messages` with `herald` (its own folder and database, imported first):
/// messages per second of the send alone.
fn fresh_send_rate(herald: &Path, messages: usize, port: u16) -> f64 {
    let fresh = Fresh::imported(herald, messages, port);
    let (elapsed, _) = timed(&mut binary_command(herald, &fresh.send_args(), false));
    messages as f64 / elapsed.as_secs_f64()
}

/// A campaign of its own folder and database, imported by `herald`, ready to send.
struct Fresh {
    dir: tempfile::TempDir,
    campaign: String,
    db: String,
}

impl Fresh {
    fn imported(herald: &Path, messages: usize, port: u16) -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        let campaign = write_campaign(dir.path(), messages, port)
            .to_string_lossy()
            .into_owned();
        let db = dir.path().join("bench.db").to_string_lossy().into_owned();
        let (_, _) = timed(&mut binary_command(
            herald,
            &["import", &campaign, "--db", &db],
            false,
        ));
        Fresh { dir, campaign, db }
    }

    fn send_args(&self) -> [&str; 5] {
        ["send", &self.campaign, "--db", &self.db, "--ignore-dns"]
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Issue #24's cost: this binary (claims fsynced before their messages leave) against a baseline
/// binary (an older build), alternating so the machine's noise falls on both alike.
fn durability_comparison(messages: usize, port: u16, baseline: &Path, rounds: usize) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for _ in 0..rounds {
        before.push(fresh_send_rate(baseline, messages, port));
        after.push(fresh_send_rate(this_herald(), messages, port));
    }
    let (before, after) = (median(before), median(after));
    let ratio = after / before;
    println!(
        "durability: baseline {before:.0} msg/s, this build {after:.0} msg/s (medians of {rounds}, alternating)"
    );
    println!(
        "ratio this/baseline: {ratio:.2} (target >= 0.90: {})",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
    for (name, herald) in [("baseline", baseline), ("this build", this_herald())] {
        if let Some(fsyncs) = fsyncs_per_thousand(herald, messages, port) {
            println!("fsync + fdatasync per 1,000 messages, {name}: {fsyncs:.1}");
        }
    }
}

/// fsync and fdatasync calls per 1,000 messages of a fresh send, counted by `strace -f -c`
/// (None without strace). The send under strace is slower; only the count is used.
fn fsyncs_per_thousand(herald: &Path, messages: usize, port: u16) -> Option<f64> {
    let strace = find_tool("strace")?;
    let fresh = Fresh::imported(herald, messages, port);
    let summary = fresh.dir.path().join("strace.txt");
    let status = Command::new(strace)
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&summary)
        .arg(herald)
        .args(fresh.send_args())
        .env("HERALD_LOG", "error")
        .stdout(Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    // `strace -c` prints a table whose rows end in the syscall's name; the calls are column 4.
    let table = std::fs::read_to_string(summary).ok()?;
    let calls: u64 = table
        .lines()
        .filter(|line| line.ends_with(" fsync") || line.ends_with(" fdatasync"))
        .filter_map(|line| line.split_whitespace().nth(3)?.parse::<u64>().ok())
        .sum();
    Some(calls as f64 * 1000.0 / messages as f64)
}
