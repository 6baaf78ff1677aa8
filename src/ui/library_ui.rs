//! The Campaigns view, the window's start page: every campaign the database knows with its
//! file, counts and last activity, opened with one click; "New campaign…" (a ready folder
//! where the user chooses) and "Duplicate" (the next mailing from one). Owns the list the
//! service last sent and the new-campaign form; the counts come from the store's tally, so the
//! list is cheap however large the campaigns are.

use std::path::{Path, PathBuf};

use egui_extras::{Column, TableBuilder, TableRow};

use super::app::{Action, ViewContext};
use super::dialogs::{Purpose, UNAVAILABLE};
use super::theme::state_color;
use crate::app::{CampaignSummary, State};

#[derive(Default)]
pub struct LibraryView {
    pub campaigns: Option<Result<Vec<CampaignSummary>, String>>,
    /// Why the last "Create" failed, shown beside it.
    pub create_error: Option<String>,
    /// Why the last campaign asked for could not be opened (and what the database still holds
    /// for it), shown above the list it was chosen from.
    pub open_error: Option<String>,
    new_folder: String,
    filter: String,
}

impl LibraryView {
    pub fn len(&self) -> Option<usize> {
        match &self.campaigns {
            Some(Ok(campaigns)) => Some(campaigns.len()),
            _ => None,
        }
    }

    pub fn set_folder(&mut self, folder: &Path) {
        self.new_folder = folder.to_string_lossy().into_owned();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        ui.horizontal(|ui| {
            ui.heading("Campaigns");
            ui.add_space(12.0);
            if ui.button("Open a campaign file…").clicked() {
                actions.push(Action::Browse(Purpose::OpenCampaign));
            }
            if ui.button("Refresh").clicked() {
                actions.push(Action::RefreshLibrary);
            }
            if ui
                .button("Suppression list")
                .on_hover_text("The addresses no campaign mails: bounces, complaints, unsubscribes")
                .clicked()
            {
                actions.push(Action::Show(super::app::Tab::Suppression));
            }
            let label = ui.label("Find");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("name or file…")
                    .desired_width(180.0),
            )
            .labelled_by(label.id);
        });
        ui.add_space(4.0);
        self.new_campaign_ui(ui, ctx, &mut actions);
        if let Some(error) = &self.open_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        ui.separator();
        match &self.campaigns {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the campaigns…");
                });
            }
            Some(Err(error)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The campaigns could not be read: {error}"),
                );
            }
            Some(Ok(campaigns)) if campaigns.is_empty() => {
                ui.add_space(24.0);
                ui.vertical_centered(|ui| {
                    ui.heading("No campaigns yet");
                    ui.label(
                        "Choose a folder above and press Create for a ready campaign (message, \
                         text version and an empty list), or open a campaign file you have.",
                    );
                });
            }
            Some(Ok(campaigns)) => {
                let needle = self.filter.trim().to_lowercase();
                let shown: Vec<&CampaignSummary> = campaigns
                    .iter()
                    .filter(|c| {
                        needle.is_empty()
                            || name_of(&c.file).to_lowercase().contains(&needle)
                            || shown_path(&c.file).to_lowercase().contains(&needle)
                    })
                    .collect();
                campaigns_table_ui(ui, &shown, ctx.path, &mut actions);
            }
        }
        actions
    }

    fn new_campaign_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &ViewContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal(|ui| {
            let label = ui.label("New campaign in folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.new_folder)
                    .hint_text("~/Campaigns/spring-sale")
                    .desired_width(320.0),
            )
            .labelled_by(label.id);
            if ui.button("Choose folder…").clicked() {
                actions.push(Action::Browse(Purpose::NewCampaignFolder));
            }
            let folder = self.new_folder.trim();
            if ui
                .add_enabled(!folder.is_empty(), egui::Button::new("Create"))
                .on_hover_text("Writes campaign.toml, body.html, body.txt and an empty list.csv")
                .clicked()
            {
                actions.push(Action::NewCampaignIn(expand_home(folder)));
            }
        });
        if ctx.dialog_failed == Some(Purpose::NewCampaignFolder) {
            ui.colored_label(ui.visuals().warn_fg_color, UNAVAILABLE);
        }
        if let Some(error) = &self.create_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }
}

/// `~/x` → the home folder's `x`, as people type it.
pub fn expand_home(text: &str) -> PathBuf {
    match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(text),
    }
}

fn campaigns_table_ui(
    ui: &mut egui::Ui,
    campaigns: &[&CampaignSummary],
    open: Option<&Path>,
    actions: &mut Vec<Action>,
) {
    let now_ms = crate::app::now_ms();
    TableBuilder::new(ui)
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(200.0).at_least(120.0))
        .column(Column::initial(90.0))
        .column(Column::initial(80.0))
        .column(Column::initial(80.0))
        .column(Column::initial(80.0))
        .column(Column::initial(80.0))
        .column(Column::initial(120.0))
        .column(Column::initial(90.0))
        .column(Column::remainder().at_least(160.0))
        .header(24.0, |mut header| {
            for title in [
                "Campaign",
                "Recipients",
                "Sent",
                "Failed",
                "Bounced",
                "To send",
                "Last activity",
                "",
                "File",
            ] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(28.0, campaigns.len(), |mut row| {
                let Some(campaign) = campaigns.get(row.index()) else {
                    return;
                };
                // Compared as written: the store keeps canonical paths, and the window does no
                // file work to make its own one so.
                let is_open = open == Some(campaign.file.as_path());
                campaign_row_ui(&mut row, campaign, is_open, now_ms, actions);
            });
        });
}

/// One campaign's row: its name (opens it), figures, last activity, Duplicate and its file.
fn campaign_row_ui(
    row: &mut TableRow<'_, '_>,
    campaign: &CampaignSummary,
    is_open: bool,
    now_ms: i64,
    actions: &mut Vec<Action>,
) {
    let c = campaign.counts;
    let name = name_of(&campaign.file);
    row.col(|ui| {
        let text = if is_open {
            egui::RichText::new(&name).strong()
        } else {
            egui::RichText::new(&name)
        };
        if ui
            .link(text)
            .on_hover_text(format!("Open {}", shown_path(&campaign.file)))
            .clicked()
        {
            actions.push(Action::Open(campaign.file.clone()));
        }
    });
    row.col(|ui| {
        ui.label(thousands(c.total()));
    });
    row.col(|ui| {
        ui.colored_label(state_color(State::Sent), thousands(c.sent));
    });
    row.col(|ui| {
        ui.colored_label(state_color(State::Failed), thousands(c.failed));
    });
    row.col(|ui| {
        ui.colored_label(state_color(State::Bounced), thousands(c.bounced));
    });
    row.col(|ui| {
        ui.label(thousands(c.pending + c.deferred + c.sending));
    });
    row.col(|ui| {
        ui.label(
            campaign
                .last_activity_ms
                .map_or_else(|| "never".to_string(), |at| ago(now_ms, at)),
        );
    });
    row.col(|ui| {
        if ui
            .small_button("Duplicate")
            .on_hover_text("The next mailing: a copy of this campaign, without its sends")
            .clicked()
        {
            actions.push(Action::Duplicate(campaign.file.clone()));
        }
    });
    row.col(|ui| {
        ui.add(egui::Label::new(egui::RichText::new(shown_path(&campaign.file)).weak()).truncate());
    });
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// How long ago `at_ms` was, as a person says it.
pub fn ago(now_ms: i64, at_ms: i64) -> String {
    let secs = (now_ms - at_ms).max(0) / 1000;
    match secs {
        0..60 => "just now".to_string(),
        60..3_600 => format!("{} min ago", secs / 60),
        3_600..86_400 => format!("{} h ago", secs / 3_600),
        86_400..172_800 => "yesterday".to_string(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A campaign's name as people call it: the file's name, or its folder's when the file has the
/// name every new campaign gets (`~/Campaigns/spring-sale/campaign.toml` is "spring-sale").
pub fn name_of(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = file
        .parent()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned());
    match folder {
        Some(folder) if stem.eq_ignore_ascii_case("campaign") && !folder.is_empty() => folder,
        _ => stem,
    }
}

/// A path as people read it: the home folder's files as `~/…` (the window shows where a
/// campaign lives, not the machine's layout). [`expand_home`] reads it back.
pub fn shown_path(path: &Path) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home
        .as_deref()
        .and_then(|home| path.strip_prefix(home).ok())
    {
        Some(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.to_string_lossy()),
        _ => path.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(50_000_000), "50,000,000");
        assert_eq!(ago(100_000, 99_000), "just now");
        assert_eq!(ago(10 * 60_000, 0), "10 min ago");
        assert_eq!(ago(3 * 3_600_000, 0), "3 h ago");
        assert_eq!(ago(90_000_000, 0), "yesterday");
        assert_eq!(ago(5 * 86_400_000, 0), "5 days ago");
        assert_eq!(
            name_of(Path::new("/c/spring-sale/campaign.toml")),
            "spring-sale"
        );
        assert_eq!(name_of(Path::new("/c/spring-sale/promo.toml")), "promo");
        assert_eq!(name_of(Path::new("campaign.toml")), "campaign");
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            let file = home.join("Campaigns/x/campaign.toml");
            assert_eq!(shown_path(&file), "~/Campaigns/x/campaign.toml");
            assert_eq!(expand_home(&shown_path(&file)), file);
        }
    }
}
