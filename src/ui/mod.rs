//! The window (eframe + egui). Owns egui and eframe; never blocks a frame and never touches the
//! database, files or the network itself: it sends requests to the engine's service thread and
//! draws what comes back. `app.rs` holds the views and the campaign being edited and applies
//! actions; each `*_ui.rs` file is one view (a struct owning its state, whose `ui` returns the
//! actions the user asked for); `dialogs.rs` runs the file choosers.

mod app;
mod compose_ui;
mod deliverability_ui;
pub mod dialogs;
mod library_ui;
mod publish_ui;
mod recipients_ui;
mod rendered_ui;
mod results_ui;
mod review_ui;
mod signin_ui;
mod suppression_ui;
mod theme;

use std::path::PathBuf;

pub use app::{Action, Closing, HeraldApp, Remembered, Tab, ViewContext};
pub use rendered_ui::{PreviewWidth, RenderedView};

/// Opens the window, optionally on a campaign file.
pub fn run(campaign: Option<PathBuf>, db: Option<PathBuf>) -> anyhow::Result<()> {
    let db = match db {
        Some(db) => db,
        None => crate::app::default_path()
            .ok_or_else(|| anyhow::anyhow!("could not find your data directory; pass --db PATH"))?,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Herald")
            // The screen it is given (issue #14): maximized where a window manager honours
            // it, and sized to the monitor on first launch where none does (see `app.rs`).
            .with_inner_size([1200.0, 800.0])
            .with_maximized(true)
            .with_min_inner_size([800.0, 520.0]),
        persist_window: true,
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Herald",
        options,
        Box::new(move |cc| match HeraldApp::new(cc, db, campaign) {
            Ok(app) => Ok(Box::new(app)),
            Err(error) => Err(error.into()),
        }),
    )
    .map_err(|error| anyhow::anyhow!("could not open the window: {error}"))
}
