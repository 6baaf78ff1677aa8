//! The rendered preview (issue #14): a ~100 KB newsletter (the reference newsletter of
//! `tests/samples/render/` with its product rows repeated) drawn by `render::render` at desktop
//! and phone width — time to ready, target < 150 ms in release — and then through the Compose
//! preview's Rendered view in egui_kittest's headless harness: every frame's `ui` timed while a
//! render is in flight on the worker thread (target < 16 ms), against frames of the same view
//! once the image shows (the reference, same run), and the time from asking to the texture
//! shown. Run: `cargo bench --bench render`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::app::service::PreviewData;
use herald::render::{self, InlineImage, RenderRequest};
use herald::ui::{PreviewWidth, RenderedView};

/// A newsletter as an ESP sends it: the reference newsletter with twelve product rows, and the
/// rest of the size in a head style block of per-component rules (ESP templates carry tens of
/// kilobytes of them), to `target_bytes` in all.
fn newsletter_of(target_bytes: usize) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/render/newsletter.html"
    );
    let base = std::fs::read_to_string(path).unwrap();
    // The product row: from the row holding the two columns to the row with the button.
    let start = base
        .find("   <tr><td style=\"padding:0 24px 24px 24px;\">")
        .unwrap();
    let end = base
        .find("   <tr><td align=\"center\" style=\"padding:8px")
        .unwrap();
    let row = &base[start..end];
    let mut rows = String::new();
    for n in 0..12 {
        rows.push_str(&row.replace("Sungold", &format!("Sungold no. {n}")));
    }
    let style_at = base.find("</style>").unwrap();
    let mut rules = String::new();
    let mut n = 0;
    while base.len() + rows.len() + rules.len() < target_bytes {
        rules.push_str(&format!(
            ".mc-block-{n} td.mc-text-{n} p {{ font-size:14px; line-height:150%; color:#4a4a4a; \
             text-align:left; margin:0 0 10px 0; }}\n"
        ));
        n += 1;
    }
    format!(
        "{}{}{}{}{}",
        &base[..style_at],
        rules,
        &base[style_at..start],
        rows,
        &base[start..]
    )
}

fn logo() -> Vec<u8> {
    let rgba: Vec<u8> = (0..120 * 40).flat_map(|_| [224, 122, 47, 255]).collect();
    render::encode_png(120, 40, &rgba).unwrap()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    let at = |q: f64| millis(times[((times.len() - 1) as f64 * q) as usize]);
    (at(0.5), at(0.95), at(1.0))
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let html = newsletter_of(100 * 1024);
    println!("newsletter: {:.1} KB of HTML", html.len() as f64 / 1024.0);

    for width in [render::DESKTOP_WIDTH_PX, render::PHONE_WIDTH_PX] {
        let request = RenderRequest {
            html: html.clone(),
            width_px: width,
            inline: vec![InlineImage {
                content_id: "logo.png".into(),
                bytes: logo(),
            }],
            remote_images: false,
        };
        let first = render::render(&request).unwrap();
        let mut times = Vec::new();
        for _ in 0..9 {
            let started = Instant::now();
            let rendered = render::render(&request).unwrap();
            times.push(started.elapsed());
            assert_eq!(rendered.height_px, first.height_px);
        }
        let (median, _, worst) = summary(times);
        println!(
            "render at {width} px ({} px tall): median {median:.1} ms, worst {worst:.1} ms \
             (target < 150 ms)",
            first.height_px
        );
    }

    let preview = PreviewData {
        index: 0,
        email: "ada@example.com".into(),
        subject: "Spring news".into(),
        html: Some(html.clone()),
        inline_images: vec![("logo.png".into(), logo())],
        ..PreviewData::default()
    };
    type State = (RenderedView, PreviewData);
    let mut harness: Harness<'_, State> = Harness::builder()
        .with_size(egui::vec2(900.0, 900.0))
        .build_ui_state(
            |ui, state: &mut State| state.0.ui(ui, &state.1),
            (RenderedView::default(), preview),
        );
    let mut in_flight = Vec::new();
    let mut ready = Vec::new();
    for round in 0..6 {
        let width = if round % 2 == 1 { "Phone" } else { "Desktop" };
        let asked = Instant::now();
        if round > 0 {
            harness.get_by_label(width).click();
        }
        loop {
            let started = Instant::now();
            harness.step();
            let frame = started.elapsed();
            // The frame that takes the image in (and uploads the texture) counts too.
            in_flight.push(frame);
            if !harness.state().0.is_rendering() {
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(60),
                "the render never came"
            );
            // A window at 60 Hz draws a frame every ~16 ms while it waits.
            std::thread::sleep(Duration::from_millis(4));
        }
        if round > 0 {
            ready.push(asked.elapsed());
        }
    }
    assert!(harness.query_by_label_contains("375 px wide").is_some());
    let mut idle = Vec::new();
    for _ in 0..120 {
        let started = Instant::now();
        harness.step();
        idle.push(started.elapsed());
    }
    assert_eq!(harness.state().0.width, PreviewWidth::Phone);
    let (flight_median, flight_p95, flight_worst) = summary(in_flight.clone());
    let (idle_median, idle_p95, idle_worst) = summary(idle);
    println!(
        "frames while rendering ({} frames): median {flight_median:.2} ms, p95 {flight_p95:.2} ms, \
         worst {flight_worst:.2} ms (target < 16 ms)",
        in_flight.len()
    );
    println!(
        "frames once shown (reference, same view): median {idle_median:.2} ms, p95 \
         {idle_p95:.2} ms, worst {idle_worst:.2} ms; in flight / shown medians: {:.2}×",
        flight_median / idle_median.max(0.001)
    );
    let (ready_median, _, ready_worst) = summary(ready);
    println!(
        "width switch to image shown, through the worker (5 switches): median {ready_median:.1} \
         ms, worst {ready_worst:.1} ms (target < 150 ms)"
    );
}
