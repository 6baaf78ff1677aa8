//! The window (eframe + egui). Owns egui and eframe; never blocks a frame and never touches the
//! database or the network itself: it sends commands to the engine and draws what comes back.

use std::path::PathBuf;

/// Opens the window, optionally on a campaign file.
pub fn run(campaign: Option<PathBuf>, db: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (campaign, db);
    anyhow::bail!("the window is not built yet; use a command (see herald --help)")
}
