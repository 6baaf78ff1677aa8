//! The Campaigns view, the window's start page: every campaign the database knows with its
//! status (draft, sending, interrupted, sent: decided in `app::library`), file, counts and last
//! activity, opened with one click; "New campaign…" (a ready folder where the user chooses),
//! "Duplicate" (the next mailing from one) and "Rename". Owns the list the service last sent,
//! the new-campaign form and the name being typed; the counts come from the store's tally, so
//! the list is cheap however large the campaigns are.

use std::path::{Path, PathBuf};

use egui_extras::{Column, TableBuilder, TableRow};

use super::app::{Action, ViewContext};
use super::dialogs::{Purpose, UNAVAILABLE};
use super::theme::state_color;
use crate::app::{CampaignStatus, LibraryEntry, State};

#[derive(Default)]
pub struct LibraryView {
    pub campaigns: Option<Result<Vec<LibraryEntry>, String>>,
    /// Why the last "Create" failed, shown beside it.
    pub create_error: Option<String>,
    /// Why the last campaign asked for could not be opened (and what the database still holds
    /// for it), shown above the list it was chosen from.
    pub open_error: Option<String>,
    /// Why the last rename was refused, shown beside the name being typed.
    pub rename_error: Option<String>,
    /// The campaign being renamed and the name typed so far.
    renaming: Option<(PathBuf, String)>,
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

    /// The rename went through: the name field closes.
    pub fn rename_done(&mut self) {
        self.renaming = None;
        self.rename_error = None;
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
        for error in [&self.open_error, &self.rename_error].into_iter().flatten() {
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
                        "Choose a folder above and press Create for a ready campaign (a message \
                         and an empty list), or open a campaign file you have.",
                    );
                });
            }
            Some(Ok(campaigns)) => {
                let needle = self.filter.trim().to_lowercase();
                let shown: Vec<&LibraryEntry> = campaigns
                    .iter()
                    .filter(|c| {
                        needle.is_empty()
                            || name_of(&c.summary.file).to_lowercase().contains(&needle)
                            || shown_path(&c.summary.file).to_lowercase().contains(&needle)
                    })
                    .collect();
                let mut rename = Rename {
                    renaming: &mut self.renaming,
                    error: &mut self.rename_error,
                };
                campaigns_table_ui(ui, &shown, ctx.path, &mut rename, &mut actions);
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
                .on_hover_text("Writes campaign.toml, body.html and an empty list.csv")
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

/// The campaign being renamed, as the table edits it.
struct Rename<'a> {
    renaming: &'a mut Option<(PathBuf, String)>,
    error: &'a mut Option<String>,
}

fn campaigns_table_ui(
    ui: &mut egui::Ui,
    campaigns: &[&LibraryEntry],
    open: Option<&Path>,
    rename: &mut Rename<'_>,
    actions: &mut Vec<Action>,
) {
    let now_ms = crate::app::now_ms();
    TableBuilder::new(ui)
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(200.0).at_least(120.0))
        .column(Column::initial(90.0))
        .column(Column::initial(90.0))
        .column(Column::initial(80.0))
        .column(Column::initial(80.0))
        .column(Column::initial(80.0))
        .column(Column::initial(80.0))
        .column(Column::initial(120.0))
        .column(Column::initial(150.0))
        .column(Column::remainder().at_least(160.0))
        .header(24.0, |mut header| {
            for title in [
                "Campaign",
                "Status",
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
                let is_open = open == Some(campaign.summary.file.as_path());
                campaign_row_ui(&mut row, campaign, is_open, now_ms, rename, actions);
            });
        });
}

/// One campaign's row: its name (opens it, or the field renaming it), status, figures, last
/// activity, Duplicate, Rename and its file.
fn campaign_row_ui(
    row: &mut TableRow<'_, '_>,
    entry: &LibraryEntry,
    is_open: bool,
    now_ms: i64,
    rename: &mut Rename<'_>,
    actions: &mut Vec<Action>,
) {
    let campaign = &entry.summary;
    let c = campaign.counts;
    let name = name_of(&campaign.file);
    let renaming_this = rename
        .renaming
        .as_ref()
        .is_some_and(|(file, _)| *file == campaign.file);
    row.col(|ui| {
        if renaming_this {
            rename_ui(ui, &campaign.file, rename, actions);
            return;
        }
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
        ui.colored_label(status_color(ui, entry.status), entry.status.label())
            .on_hover_text(entry.status.explain());
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
        if ui
            .small_button("Rename")
            .on_hover_text("A new name for the campaign (its folder, or its file); its sends stay")
            .clicked()
        {
            *rename.renaming = Some((campaign.file.clone(), name.clone()));
            *rename.error = None;
        }
    });
    row.col(|ui| {
        ui.add(egui::Label::new(egui::RichText::new(shown_path(&campaign.file)).weak()).truncate());
    });
}

/// The field renaming a campaign, with OK and Cancel, and why the last name was refused.
fn rename_ui(ui: &mut egui::Ui, file: &Path, rename: &mut Rename<'_>, actions: &mut Vec<Action>) {
    let Some((_, name)) = rename.renaming.as_mut() else {
        return;
    };
    let field = ui.add(
        egui::TextEdit::singleline(name)
            .desired_width(110.0)
            .hint_text("new name"),
    );
    let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    if ui.small_button("OK").clicked() || entered {
        actions.push(Action::Rename {
            path: file.to_path_buf(),
            name: name.trim().to_string(),
        });
    }
    if ui.small_button("Cancel").clicked() {
        *rename.renaming = None;
        *rename.error = None;
    }
}

fn status_color(ui: &egui::Ui, status: CampaignStatus) -> egui::Color32 {
    match status {
        CampaignStatus::Draft => ui.visuals().weak_text_color(),
        CampaignStatus::Sending => state_color(State::Sending),
        CampaignStatus::Interrupted => ui.visuals().warn_fg_color,
        CampaignStatus::Sent => state_color(State::Sent),
    }
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

/// A campaign's name as people call it (`app::library` decides it, as a rename follows it).
pub fn name_of(file: &Path) -> String {
    crate::app::library::name_of(file)
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
