//! Frame time of the window with 1,000,000 recipients in the table (issue #6): the real app in
//! egui_kittest's headless harness (layout and accessibility, no GPU painting), on the
//! Recipients tab, scrolled through the whole table with the mouse wheel while blocks of rows
//! arrive from the engine's service thread. Prints the median, 95th percentile and worst frame.
//! Target: under 16 ms. Then the time the store takes to answer the table for a page at the
//! top, middle and end of the list (count and rows, as the window asks), which is how long a
//! jump shows empty rows. Then the campaign library (issue #14): 49 more campaigns beside the
//! big one, the library's query (counts from the tally) against counting the big campaign's
//! rows through its index (what a library without the tally pays per campaign), and the window
//! opened on the library: time until the 50 campaigns show, and its frames meanwhile. Run:
//! `cargo bench --bench ui_frames` (HERALD_BENCH_ROWS to change the size; HERALD_BENCH_PART=
//! library skips the scrolling).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::{HeraldApp, Remembered};

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let rows: usize = std::env::var("HERALD_BENCH_ROWS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::with_capacity(rows * 48);
    csv.push_str("email,first_name,city\n");
    for n in 0..rows {
        csv.push_str(&format!(
            "reader{n}@mail{}.example,Reader{n},City{}\n",
            n % 100,
            n % 37
        ));
    }
    std::fs::write(dir.path().join("list.csv"), csv).unwrap();
    std::fs::write(dir.path().join("body.txt"), "Hello {{ first_name }}").unwrap();
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(
        &campaign,
        "[message]\nfrom = \"A <a@herald.example>\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n\
         [recipients]\ncsv = \"list.csv\"\n[[relay]]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
    )
    .unwrap();
    let db = dir.path().join("herald.db");
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("import")
        .arg(&campaign)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(imported.status.success());

    let (store_path, campaign_path) = (db.clone(), campaign.clone());
    let library_only = std::env::var("HERALD_BENCH_PART").is_ok_and(|part| part == "library");
    if library_only {
        library_bench(&store_path, &campaign_path, rows);
        return;
    }
    let remembered = Remembered {
        tab: herald::ui::Tab::Recipients,
        ..Remembered::default()
    };
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            HeraldApp::with_service(cc.egui_ctx.clone(), db, Some(campaign), remembered).unwrap()
        });
    let deadline = Instant::now() + Duration::from_secs(120);
    while harness.state().table_total() < rows as u64 {
        assert!(Instant::now() < deadline, "the table never filled");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let table_point = harness.get_by_label("Email").rect().center() + egui::vec2(0.0, 200.0);
    let mut frames = Vec::new();
    // Fling down through the table, then back up, one wheel event a frame.
    for direction in [-1.0_f32, 1.0] {
        for _ in 0..600 {
            harness.hover_at(table_point);
            harness.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, direction * 40_000.0),
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Wheel,
                modifiers: egui::Modifiers::default(),
            });
            let started = Instant::now();
            harness.step();
            frames.push(started.elapsed());
        }
    }
    frames.sort();
    let at = |q: f64| frames[((frames.len() - 1) as f64 * q) as usize];
    let (median, p95, worst) = (at(0.5), at(0.95), at(1.0));
    println!(
        "ui frames, {rows} recipients in the table, {} frames while scrolling: median {:.2} ms, p95 {:.2} ms, worst {:.2} ms (target < 16 ms: {})",
        frames.len(),
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        if p95 < Duration::from_millis(16) {
            "met at p95"
        } else {
            "NOT met"
        }
    );

    let store = herald::store::Store::open(&store_path).unwrap();
    let loaded = herald::campaign::Campaign::load_for_reading(&campaign_path).unwrap();
    let campaign_id = store
        .find_campaign(&herald::identity::campaign_key(&loaded))
        .unwrap()
        .unwrap();
    let filters = [
        ("all rows", None, None),
        ("pending", Some(herald::store::State::Pending), None),
        ("search", None, Some("reader9")),
    ];
    for (name, state, search) in filters {
        let mut timings = Vec::new();
        let matching = store.count_matching(campaign_id, state, search).unwrap();
        for offset in [0, matching / 2, matching.saturating_sub(60)] {
            let started = Instant::now();
            let total = store.count_matching(campaign_id, state, search).unwrap();
            let page = store
                .page_at(campaign_id, state, search, offset, 60)
                .unwrap();
            assert_eq!(total, matching);
            timings.push(format!(
                "{offset}: {:.0} ms ({} rows)",
                started.elapsed().as_secs_f64() * 1e3,
                page.len()
            ));
        }
        println!("table page, {name}, at offset {}", timings.join(", "));
    }
    library_bench(&store_path, &campaign_path, rows);
}

/// The campaign library with 50 campaigns, one of them of `rows` recipients.
fn library_bench(store_path: &std::path::Path, campaign_path: &std::path::Path, rows: usize) {
    let mut store = herald::store::Store::open(store_path).unwrap();
    let loaded = herald::campaign::Campaign::load_for_reading(campaign_path).unwrap();
    let big = store
        .find_campaign(&herald::identity::campaign_key(&loaded))
        .unwrap()
        .unwrap();
    if store.library().unwrap().len() < 50 {
        for n in 1..50 {
            let id = store
                .campaign(
                    &format!("/bench/campaign-{n}.toml"),
                    &format!("campaign {n}"),
                )
                .unwrap();
            let mut importer = store.importer(id, &[]).unwrap();
            for row in 0..1_000_u64 {
                let email = format!("reader{row}@list{n}.example");
                importer
                    .push(herald::store::ImportRow::new(
                        row + 2,
                        email.clone(),
                        email,
                        [""; 0],
                        None,
                    ))
                    .unwrap();
            }
            importer.finish().unwrap();
        }
    }
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let library = median(
        (0..21)
            .map(|_| {
                let started = Instant::now();
                assert_eq!(store.library().unwrap().len(), 50);
                started.elapsed()
            })
            .collect(),
    );
    let counted = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                assert_eq!(store.counts(big).unwrap().total(), rows as u64);
                started.elapsed()
            })
            .collect(),
    );
    println!(
        "library, 50 campaigns (one of {rows} recipients): listed from the tally in {:.2} ms; \
         counting the {rows}-recipient campaign through its index takes {:.1} ms, so listing \
         50 such campaigns by counting would take {:.2} s, {:.0}x the tally's time",
        library.as_secs_f64() * 1e3,
        counted.as_secs_f64() * 1e3,
        counted.as_secs_f64() * 50.0,
        counted.as_secs_f64() * 50.0 / library.as_secs_f64()
    );
    drop(store);

    let db = store_path.to_path_buf();
    let started = Instant::now();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            HeraldApp::with_service(cc.egui_ctx.clone(), db, None, Remembered::default()).unwrap()
        });
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.state().library_len() != Some(50) {
        assert!(Instant::now() < deadline, "the library never showed");
        let frame = Instant::now();
        harness.step();
        frames.push(frame.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    let shown = started.elapsed();
    for _ in 0..30 {
        let frame = Instant::now();
        harness.step();
        frames.push(frame.elapsed());
    }
    frames.sort();
    println!(
        "library window: 50 campaigns on screen {:.0} ms after the app started; {} frames, \
         median {:.2} ms, worst {:.2} ms (target < 16 ms)",
        shown.as_secs_f64() * 1e3,
        frames.len(),
        frames[frames.len() / 2].as_secs_f64() * 1e3,
        frames[frames.len() - 1].as_secs_f64() * 1e3
    );
}
