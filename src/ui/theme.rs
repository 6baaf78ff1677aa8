//! The look: light and dark visuals with a little more air than egui's defaults, and the
//! colours that carry meaning (sent, failed, pending) in one place.

use crate::app::State;

pub fn apply(ctx: &egui::Context, dark: bool) {
    let mut visuals = if dark {
        egui::Visuals::dark()
    } else {
        egui::Visuals::light()
    };
    visuals.selection.bg_fill = accent(dark);
    visuals.hyperlink_color = accent(dark);
    ctx.set_visuals(visuals);
    ctx.global_style_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(10.0, 4.0);
        style.spacing.interact_size.y = 24.0;
    });
}

pub fn accent(dark: bool) -> egui::Color32 {
    if dark {
        egui::Color32::from_rgb(64, 132, 214)
    } else {
        egui::Color32::from_rgb(30, 100, 200)
    }
}

/// The colour of a state in tables and counters.
pub fn state_color(state: State) -> egui::Color32 {
    match state {
        State::Sent => egui::Color32::from_rgb(70, 170, 90),
        State::Failed => egui::Color32::from_rgb(220, 80, 70),
        State::Bounced => egui::Color32::from_rgb(180, 60, 110),
        State::Uncertain => egui::Color32::from_rgb(230, 160, 40),
        State::Deferred => egui::Color32::from_rgb(200, 140, 60),
        State::Sending => egui::Color32::from_rgb(90, 150, 230),
        State::Pending => egui::Color32::GRAY,
        State::Skipped => egui::Color32::DARK_GRAY,
    }
}

/// Spam complaints: the figure a sender most needs to keep low.
pub const COMPLAINED: egui::Color32 = egui::Color32::from_rgb(200, 70, 160);
/// People who asked to leave.
pub const UNSUBSCRIBED: egui::Color32 = egui::Color32::from_rgb(120, 130, 210);
