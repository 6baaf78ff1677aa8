//! The Results view of a campaign: delivered, failed, deferred, uncertain and skipped at a
//! glance, broken down by reply class (no such user, mailbox full, policy…) and by destination
//! domain, each figure a link to the recipients table filtered to those rows; a chart of the
//! outcomes over time, for finished runs too (from the event log); and the export of every
//! recipient's outcome. Owns the figures the service last sent; asks again when a run ends.
//! Bounced is a state (in [`SHOWN_STATES`]); complained and unsubscribed are what the
//! campaign's mail put on the suppression list, shown beside them.

use std::path::Path;

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::app::{Action, ViewContext};
use super::dialogs::{Purpose, UNAVAILABLE};
use super::library_ui::thousands;
use super::theme::{COMPLAINED, UNSUBSCRIBED, state_color};
use crate::app::service::ResultsData;
use crate::app::{Counts, FeedbackCounts, State, TimeBucket};

/// The headline figures, in the order a marketer reads them.
const SHOWN_STATES: [(State, &str); 7] = [
    (State::Sent, "Delivered"),
    (State::Failed, "Failed"),
    (State::Bounced, "Bounced"),
    (State::Deferred, "Deferred"),
    (State::Uncertain, "Uncertain"),
    (State::Skipped, "Skipped"),
    (State::Pending, "Not sent yet"),
];

#[derive(Default)]
pub struct ResultsView {
    pub data: Option<Result<Box<ResultsData>, String>>,
    /// The figures are older than the campaign's state (a run ended): ask again when shown.
    outdated: bool,
    asked: bool,
    export_path: String,
    pub export_result: Option<Result<u64, String>>,
}

impl ResultsView {
    pub fn reset(&mut self) {
        *self = ResultsView::default();
    }

    pub fn stale(&mut self) {
        self.outdated = true;
    }

    pub fn loading(&mut self) {
        self.asked = true;
        self.outdated = false;
    }

    pub fn has_data(&self) -> bool {
        matches!(self.data, Some(Ok(_)))
    }

    /// Whether showing the view should ask the service for its figures.
    pub fn wants_data(&self) -> bool {
        self.data.is_none() && !self.asked || self.outdated
    }

    pub fn set_export_path(&mut self, path: &Path) {
        self.export_path = path.to_string_lossy().into_owned();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        if ctx.path.is_none() {
            ui.add_space(24.0);
            ui.vertical_centered(|ui| {
                ui.heading("No campaign open");
                ui.label("Open a campaign from the Campaigns page to see how its sending went.");
            });
            return actions;
        }
        ui.horizontal(|ui| {
            ui.heading("Results");
            if ui.button("Refresh").clicked() {
                actions.push(Action::RefreshResults);
            }
            if self.asked && self.data.is_none() {
                ui.spinner();
                ui.label("Counting…");
            }
        });
        let data = match &self.data {
            None => return actions,
            Some(Err(error)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The results could not be read: {error}"),
                );
                return actions;
            }
            Some(Ok(data)) => data,
        };
        if data.counts.total() == 0 {
            ui.add_space(24.0);
            ui.vertical_centered(|ui| {
                ui.heading("Nothing sent yet");
                ui.label("Import the list on the Recipients tab, then start the run on Publish.");
            });
            return actions;
        }
        egui::ScrollArea::vertical()
            .id_salt("results")
            .show(ui, |ui| {
                headline_ui(ui, &data.counts, &data.feedback, &mut actions);
                ui.add_space(8.0);
                ui.columns(2, |halves| {
                    let [left, right] = halves else {
                        return;
                    };
                    replies_ui(left, data, &mut actions);
                    domains_ui(right, data, &mut actions);
                });
                ui.add_space(8.0);
                timeline_ui(ui, &data.timeline);
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    let label = ui.label("Export every recipient's outcome to");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.export_path)
                            .hint_text("results.csv")
                            .desired_width(240.0),
                    )
                    .labelled_by(label.id);
                    if ui.button("Choose…").clicked() {
                        actions.push(Action::Browse(Purpose::ExportResults));
                    }
                    if ui
                        .add_enabled(
                            !self.export_path.trim().is_empty(),
                            egui::Button::new("Export CSV"),
                        )
                        .clicked()
                    {
                        actions.push(Action::ExportAll(self.export_path.trim().into()));
                    }
                    match &self.export_result {
                        Some(Ok(count)) => {
                            ui.label(format!("{} recipient(s) exported", thousands(*count)));
                        }
                        Some(Err(error)) => {
                            ui.colored_label(ui.visuals().error_fg_color, error);
                        }
                        None => {}
                    }
                });
                if ctx.dialog_failed == Some(Purpose::ExportResults) {
                    ui.colored_label(ui.visuals().warn_fg_color, UNAVAILABLE);
                }
            });
        actions
    }
}

fn show_state(state: State) -> Action {
    Action::ShowRecipients {
        state: Some(state),
        reply: None,
        search: String::new(),
    }
}

fn headline_ui(
    ui: &mut egui::Ui,
    counts: &Counts,
    feedback: &FeedbackCounts,
    actions: &mut Vec<Action>,
) {
    let attempted = counts.sent + counts.failed + counts.uncertain + counts.bounced;
    ui.horizontal_wrapped(|ui| {
        for (state, title) in SHOWN_STATES {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_min_width(110.0);
                ui.vertical(|ui| {
                    ui.weak(title);
                    let figure = egui::RichText::new(thousands(counts.get(state)))
                        .size(22.0)
                        .color(state_color(state));
                    if ui
                        .link(figure)
                        .on_hover_text(format!("Show the {} recipients", state.as_str()))
                        .clicked()
                    {
                        actions.push(show_state(state));
                    }
                    if state == State::Sent && attempted > 0 {
                        ui.weak(format!(
                            "{:.1} % of those tried",
                            counts.sent as f64 * 100.0 / attempted as f64
                        ));
                    }
                });
            });
        }
        for (title, figure, color, hover) in [
            (
                "Complained",
                feedback.complained,
                COMPLAINED,
                "Marked as spam (feedback-loop reports): suppressed in every campaign",
            ),
            (
                "Unsubscribed",
                feedback.unsubscribed,
                UNSUBSCRIBED,
                "Asked to leave, by link or by mail: suppressed in every campaign",
            ),
        ] {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_min_width(110.0);
                ui.vertical(|ui| {
                    ui.weak(title);
                    if ui
                        .link(
                            egui::RichText::new(thousands(figure))
                                .size(22.0)
                                .color(color),
                        )
                        .on_hover_text(format!("{hover}. Show the suppression list"))
                        .clicked()
                    {
                        actions.push(Action::Show(super::app::Tab::Suppression));
                    }
                });
            });
        }
        if feedback.unverified > 0 {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_min_width(110.0);
                ui.vertical(|ui| {
                    ui.weak("Unverified reports");
                    ui.label(
                        egui::RichText::new(thousands(feedback.unverified))
                            .size(22.0)
                            .color(ui.visuals().warn_fg_color),
                    )
                    .on_hover_text(super::publish_ui::UNVERIFIED_HOVER);
                    ui.weak("held, not applied");
                });
            });
        }
    });
}

fn replies_ui(ui: &mut egui::Ui, data: &ResultsData, actions: &mut Vec<Action>) {
    ui.strong("Why they did not go");
    if data.replies.is_empty() {
        ui.weak("Every recipient tried so far was delivered.");
        return;
    }
    egui::Grid::new("reply_classes")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.weak("State");
            ui.weak("Reason");
            ui.weak("Recipients");
            ui.end_row();
            for group in &data.replies {
                ui.colored_label(state_color(group.state), group.state.as_str());
                if ui
                    .link(group.class.label())
                    .on_hover_text(format!("For example: {}", group.example))
                    .clicked()
                {
                    actions.push(Action::ShowRecipients {
                        state: Some(group.state),
                        reply: Some(group.class),
                        search: String::new(),
                    });
                }
                ui.label(thousands(group.count));
                ui.end_row();
            }
        });
}

fn domains_ui(ui: &mut egui::Ui, data: &ResultsData, actions: &mut Vec<Action>) {
    ui.strong("By destination domain");
    egui::Grid::new("domains")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for title in [
                "Domain",
                "Delivered",
                "Failed",
                "Bounced",
                "Deferred",
                "Uncertain",
            ] {
                ui.weak(title);
            }
            ui.end_row();
            for row in &data.domains {
                let search = format!("@{}", row.domain);
                if ui.link(&row.domain).clicked() {
                    actions.push(Action::ShowRecipients {
                        state: None,
                        reply: None,
                        search: search.clone(),
                    });
                }
                for state in [
                    State::Sent,
                    State::Failed,
                    State::Bounced,
                    State::Deferred,
                    State::Uncertain,
                ] {
                    let n = row.counts.get(state);
                    if n == 0 {
                        ui.weak("0");
                    } else if ui
                        .link(egui::RichText::new(thousands(n)).color(state_color(state)))
                        .clicked()
                    {
                        actions.push(Action::ShowRecipients {
                            state: Some(state),
                            reply: None,
                            search: search.clone(),
                        });
                    }
                }
                ui.end_row();
            }
        });
}

/// The outcomes per interval since the first one: seconds for a short run, minutes or hours
/// for longer ones, so the chart keeps a readable number of points. Intervals with none count
/// zero, so a line never bridges a quiet stretch (retries an hour later) as if it were busy.
pub fn series(timeline: &[TimeBucket], state: State) -> (Vec<[f64; 2]>, &'static str) {
    let (Some(first), Some(last)) = (timeline.first(), timeline.last()) else {
        return (Vec::new(), "seconds");
    };
    let span = last.at_secs - first.at_secs;
    let (step, unit) = match span {
        0..600 => (1, "seconds"),
        600..36_000 => (60, "minutes"),
        _ => (3_600, "hours"),
    };
    let intervals = ((span / step) as usize + 1).min(100_000);
    let mut counts = vec![0.0; intervals];
    for bucket in timeline.iter().filter(|bucket| bucket.state == state) {
        let index = ((bucket.at_secs - first.at_secs) / step) as usize;
        if let Some(slot) = counts.get_mut(index) {
            *slot += bucket.count as f64;
        }
    }
    if counts.iter().all(|count| *count == 0.0) {
        return (Vec::new(), unit);
    }
    let points = counts
        .into_iter()
        .enumerate()
        .map(|(index, count)| [index as f64, count])
        .collect();
    (points, unit)
}

fn timeline_ui(ui: &mut egui::Ui, timeline: &[TimeBucket]) {
    ui.strong("Outcomes over time");
    if timeline.is_empty() {
        ui.weak("Nothing was sent yet: the chart fills in as the run goes.");
        return;
    }
    let (_, unit) = series(timeline, State::Sent);
    Plot::new("results_timeline")
        .height(180.0)
        .legend(Legend::default())
        .allow_scroll(false)
        .include_y(0.0)
        .x_axis_label(format!("{unit} since the first send"))
        .y_axis_label(format!("per {}", unit.trim_end_matches('s')))
        .show(ui, |plot| {
            for (state, name) in [
                (State::Sent, "delivered"),
                (State::Failed, "failed"),
                (State::Bounced, "bounced"),
                (State::Deferred, "deferred"),
                (State::Uncertain, "uncertain"),
            ] {
                let (points, _) = series(timeline, state);
                if !points.is_empty() {
                    plot.line(Line::new(name, PlotPoints::from(points)).color(state_color(state)));
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(at_secs: i64, state: State, count: u64) -> TimeBucket {
        TimeBucket {
            at_secs,
            state,
            count,
        }
    }

    #[test]
    fn series_pick_a_unit_for_the_span_and_add_up_each_interval() {
        let short = [
            bucket(100, State::Sent, 3),
            bucket(100, State::Failed, 1),
            bucket(102, State::Sent, 4),
        ];
        assert_eq!(
            series(&short, State::Sent),
            (vec![[0.0, 3.0], [1.0, 0.0], [2.0, 4.0]], "seconds")
        );
        let long = [
            bucket(0, State::Sent, 1),
            bucket(30, State::Sent, 2),
            bucket(61, State::Sent, 5),
            bucket(1_000, State::Failed, 1),
        ];
        let (points, unit) = series(&long, State::Sent);
        assert_eq!(unit, "minutes");
        assert_eq!(points.len(), 17, "minutes 0 to 16");
        assert_eq!(&points[..3], &[[0.0, 3.0], [1.0, 5.0], [2.0, 0.0]]);
        assert_eq!(series(&long, State::Deferred), (Vec::new(), "minutes"));
        assert_eq!(series(&[], State::Sent), (Vec::new(), "seconds"));
    }
}
