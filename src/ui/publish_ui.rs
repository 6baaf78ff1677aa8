//! The Publish view: delivery mode, relays (with a connection test), options and throttling,
//! and the run itself: start/pause/resume/stop, progress with ETA, a live chart of messages
//! per second, per-route figures, the latest errors, and one-click resend of failures. Owns the
//! chart's history, the relay tests' answers and the passwords being typed. Also what comes
//! back (issue #13): "Check mailbox" with its last result and any warning about the sender,
//! and what Start checked first (the mailbox, the unsubscribe pull). The deliverability
//! findings (issue #23) are `deliverability_ui.rs`'s section, drawn below the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use egui_plot::{Line, Plot, PlotPoints};

use super::app::{Action, ViewContext};
use super::deliverability_ui::DnsPanel;
use super::signin_ui::{Scene, SignInPanel};
use super::theme::{COMPLAINED, UNSUBSCRIBED, state_color};
use crate::app::State;
use crate::app::service::{BeforeStart, Document};
use crate::campaign::{RawBounces, RawRelay, RelaySpec};
use crate::engine::{Progress, RunState};
use crate::inbox::Summary;

#[derive(Default)]
pub struct PublishView {
    rate_history: Vec<[f64; 2]>,
    /// Each relay's last connection test, with the settings it tested: a result is shown
    /// only while the relay on screen still has them (issue #20: "connected to" stayed green
    /// after the port changed).
    relay_tests: HashMap<String, (RawRelay, Result<String, String>)>,
    /// Passwords being typed, by relay index; never saved in the campaign or on disk.
    password_inputs: HashMap<usize, String>,
    /// The last "Check mailbox" (or the read Start made first).
    pub mailbox: Option<Result<Box<Summary>, String>>,
    mailbox_at_ms: Option<i64>,
    mailbox_busy: bool,
    /// What the last Start checked before sending.
    pub before_start: Option<BeforeStart>,
    /// Why the last Start did not start, shown beside the button.
    pub start_error: Option<String>,
    /// The bounce mailbox's password being typed; never saved in the campaign or on disk.
    mailbox_password: String,
    /// Sign-in beside relays and the mailbox that name an OAuth2 grant (issue #22).
    pub signin: SignInPanel,
    /// The "Deliverability (DNS)" section (issue #23).
    pub dns: DnsPanel,
}

impl PublishView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        self.signin.keep_current(ctx, &mut actions);
        self.dns.keep_current(ctx, &mut actions);
        egui::ScrollArea::vertical()
            .id_salt("publish")
            .show(ui, |ui| {
                // Each section in a scope of its own: egui numbers a widget's id by the widgets
                // drawn before it, so without one, the DNS findings arriving (a spinner turning
                // into a list) would renumber every button below and a click pressed in that
                // frame would reach no button.
                ui.push_id("run", |ui| run_ui(self, ui, ctx, &mut actions));
                ui.separator();
                ui.push_id("dns", |ui| self.dns.ui(ui, ctx, &mut actions));
                ui.separator();
                ui.push_id("feedback", |ui| feedback_ui(self, ui, ctx, &mut actions));
                ui.separator();
                ui.columns(2, |halves| {
                    let [left, right] = halves else {
                        return;
                    };
                    delivery_ui(self, left, ctx, &mut actions);
                    options_ui(right, ctx);
                });
            });
        actions
    }

    pub fn record_rate(&mut self, progress: &Progress) {
        let t = progress.elapsed_secs as f64;
        if self.rate_history.last().is_none_or(|last| last[0] < t) {
            self.rate_history.push([t, progress.rate_per_sec]);
            if self.rate_history.len() > 600 {
                self.rate_history.remove(0);
            }
        }
    }

    /// Another campaign: its mailbox and checks are not this one's. Returns the cancels of
    /// the sign-ins still waiting for the browser, for the service.
    #[must_use]
    pub fn reset_feedback(&mut self) -> Vec<crate::app::service::SignInRequest> {
        self.mailbox = None;
        self.mailbox_at_ms = None;
        self.mailbox_busy = false;
        self.before_start = None;
        self.start_error = None;
        self.relay_tests.clear();
        self.dns.reset();
        self.signin.reset()
    }

    pub fn mailbox_checking(&mut self) {
        self.mailbox_busy = true;
    }

    pub fn mailbox_checked(&mut self, result: Result<Box<Summary>, String>) {
        self.mailbox_busy = false;
        self.mailbox_at_ms = Some(crate::app::now_ms());
        if result.is_err() {
            // A refused sign-in fails the check: the mailbox's sign-in row says so.
            self.signin.stale();
        }
        self.mailbox = Some(result);
    }

    pub fn clear_rates(&mut self) {
        self.rate_history.clear();
    }

    pub fn relay_testing(&mut self, name: &str, relay: RawRelay) {
        self.relay_tests
            .insert(name.to_string(), (relay, Ok("testing…".into())));
    }

    pub fn relay_tested(&mut self, name: String, result: Result<String, String>) {
        if let Some((_, shown)) = self.relay_tests.get_mut(&name) {
            *shown = result;
        }
    }
}

/// Relay `index` of the document as a connection test needs it, with the HELO name to use.
pub fn relay_spec(
    doc: &Document,
    path: Option<PathBuf>,
    index: usize,
) -> Option<(RelaySpec, String)> {
    let raw = doc.raw.relays.get(index)?;
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("relay {}", index + 1));
    // An unknown word is no relay to test: the Problems box names it (the same reading as the
    // campaign file's).
    let security = crate::campaign::Security::parse(raw.security.as_deref())?;
    let default_port = security.default_port();
    let base = path
        .as_deref()
        .and_then(Path::parent)
        .map(PathBuf::from)
        .unwrap_or_default();
    let relay = RelaySpec {
        name,
        host: raw.host.clone().unwrap_or_default(),
        port: raw
            .port
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or(default_port),
        security,
        username: raw.username.clone(),
        password_env: raw.password_env.clone(),
        oauth2: raw.oauth2.clone(),
        ca_file: raw.ca_file.as_ref().map(|file| base.join(file)),
        weight: 1,
        max_connections: 1,
        rate_per_hour: 0,
    };
    let helo = doc
        .raw
        .direct
        .as_ref()
        .and_then(|direct| direct.helo.clone())
        .unwrap_or_else(|| "localhost".into());
    Some((relay, helo))
}

/// The run: its controls, what Start checked, uncertain recipients, progress, the rate chart,
/// and per route figures and the latest errors while one goes.
fn run_ui(view: &PublishView, ui: &mut egui::Ui, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
    run_controls_ui(view, ui, ctx, actions);
    next_step_ui(ui, ctx);
    if let Some(found) = &view.before_start {
        before_start_ui(ui, found);
    }
    if ctx.counts.uncertain > 0 {
        uncertain_ui(ui, ctx, actions);
    }
    progress_ui(ui, ctx);
    rate_chart_ui(ui, &view.rate_history, ctx.running);
    if let Some(progress) = ctx.progress {
        if !progress.routes.is_empty() {
            routes_ui(ui, progress);
        }
        if !progress.recent_errors.is_empty() {
            recent_errors_ui(ui, progress);
        }
    }
}

/// Where the campaign stands for the run buttons: which of Start and Resume sending applies,
/// and the sentence that says why (issue #20: both were lit with no hint of the difference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStage {
    /// Nothing imported yet: Start imports the list and sends.
    NotImported,
    /// Nobody sent to yet: Start.
    Fresh { left: u64 },
    /// Sent in part and stopped (or interrupted): Resume sending goes on.
    Interrupted { left: u64 },
    /// Everyone has been sent to: neither.
    Done,
    /// A run goes (`paused` or not).
    Running { paused: bool },
}

impl RunStage {
    pub fn of(counts: &crate::app::Counts, running: bool, paused: bool) -> RunStage {
        let left = counts.pending + counts.deferred + counts.sending;
        // The library's status decides fresh or interrupted: rows skipped at import (a
        // duplicate) are no send, so they never make a list "sent in part" (issue #20).
        let status = crate::app::CampaignStatus::of(counts, false);
        match () {
            _ if running => RunStage::Running { paused },
            _ if counts.total() == 0 => RunStage::NotImported,
            _ if left == 0 => RunStage::Done,
            _ if status == crate::app::CampaignStatus::Draft => RunStage::Fresh { left },
            _ => RunStage::Interrupted { left },
        }
    }

    /// What the buttons do now, in a sentence.
    pub fn hint(&self) -> String {
        match self {
            RunStage::NotImported => {
                "Start imports the list and sends to everyone on it.".to_string()
            }
            RunStage::Fresh { left } => format!("Start sends to the {left} recipient(s)."),
            RunStage::Interrupted { left } => format!(
                "Sent in part: Resume sending goes on with the {left} recipient(s) not sent \
                 yet; those already sent are not mailed again."
            ),
            RunStage::Done => "Nobody is left to send to. To mail the list again, Duplicate \
                               this campaign on the Campaigns tab."
                .to_string(),
            RunStage::Running { paused: true } => {
                "Paused: nothing more is sent until Resume.".to_string()
            }
            RunStage::Running { paused: false } => String::new(),
        }
    }
}

/// Why "Resend failed" is grey, when it is.
fn resend_hint(counts: &crate::app::Counts, running: bool) -> Option<String> {
    if counts.failed > 0 {
        return running.then(|| "Resend failed waits for the run to end.".to_string());
    }
    let waiting = counts.deferred;
    (waiting > 0).then(|| {
        format!(
            "No failures to resend: {waiting} recipient(s) wait out a retry delay{}.",
            if running {
                " and are retried by this run"
            } else {
                "; Resume sending retries them"
            }
        )
    })
}

/// Start, pause, resume, stop and resend failed, with what they would do and why the last
/// Start did not start.
fn run_controls_ui(
    view: &PublishView,
    ui: &mut egui::Ui,
    ctx: &ViewContext<'_>,
    actions: &mut Vec<Action>,
) {
    let running = ctx.running;
    let counts = ctx.counts;
    let paused = matches!(
        ctx.progress.map(|p| &p.state),
        Some(RunState::Paused { .. })
    );
    let stage = RunStage::of(&counts, running, paused);
    ui.horizontal(|ui| {
        ui.heading("Run");
        ui.add_space(12.0);
        let startable = matches!(stage, RunStage::NotImported | RunStage::Fresh { .. });
        if ui
            .add_enabled(startable, egui::Button::new("Start"))
            .clicked()
        {
            actions.push(Action::Start);
        }
        if ui
            .add_enabled(running && !paused, egui::Button::new("Pause"))
            .clicked()
        {
            actions.push(Action::Pause);
        }
        let resumable = matches!(
            stage,
            RunStage::Running { paused: true } | RunStage::Interrupted { .. }
        );
        let resume_label = if running { "Resume" } else { "Resume sending" };
        if ui
            .add_enabled(resumable, egui::Button::new(resume_label))
            .clicked()
        {
            actions.push(Action::Resume);
        }
        if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
            actions.push(Action::Stop);
        }
        ui.separator();
        // Issue #21: addresses a server refused as dead stay out unless asked; the choice
        // lives in egui's memory, like a widget's own state.
        let hard_id = ui.scope_id().with("resend_include_hard");
        let mut include_hard = ui.data(|data| data.get_temp::<bool>(hard_id).unwrap_or(false));
        if ui
            .add_enabled(
                !running && counts.failed > 0,
                egui::Button::new(format!("Resend failed ({})", counts.failed)),
            )
            .clicked()
        {
            actions.push(Action::Resend {
                include_uncertain: false,
                include_hard,
            });
        }
        if ui
            .checkbox(&mut include_hard, "with dead addresses")
            .on_hover_text(
                "Also resend recipients a server refused as \"no such user\" or \"no such domain\" (5.1.x); their addresses come off the suppression list. Mailing dead addresses hurts your reputation.",
            )
            .changed()
        {
            ui.data_mut(|data| data.insert_temp(hard_id, include_hard));
        }
        if let Some(error) = &view.start_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    });
    let hints: Vec<String> = [Some(stage.hint()), resend_hint(&counts, running)]
        .into_iter()
        .flatten()
        .filter(|hint| !hint.is_empty())
        .collect();
    if !hints.is_empty() {
        ui.weak(hints.join(" "));
    }
}

/// Recipients whose fate is unknown: resend them or mark them sent.
fn uncertain_ui(ui: &mut egui::Ui, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
    let running = ctx.running;
    let counts = ctx.counts;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.colored_label(
            state_color(State::Uncertain),
            format!(
                "{} recipient(s) are uncertain: the connection dropped after their message was sent and before the server answered, so they may or may not have it.",
                counts.uncertain
            ),
        );
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Resend them")).clicked() {
                actions.push(Action::Resend {
                    include_uncertain: true,
                    include_hard: false,
                });
            }
            if ui.add_enabled(!running, egui::Button::new("Mark them sent")).clicked() {
                actions.push(Action::MarkUncertainSent);
            }
        });
    });
}

/// The share of the list done, with the ETA, and each state's count.
fn progress_ui(ui: &mut egui::Ui, ctx: &ViewContext<'_>) {
    let running = ctx.running;
    let counts = ctx.counts;
    let progress = ctx.progress;
    let done = counts.sent + counts.failed + counts.bounced + counts.skipped + counts.uncertain;
    let fraction = if counts.total() == 0 {
        0.0
    } else {
        done as f32 / counts.total() as f32
    };
    // No ETA while paused or stopping: nothing is on its way, so no time can be promised.
    let eta = progress
        .filter(|p| running && !matches!(p.state, RunState::Paused { .. } | RunState::Stopping))
        .and_then(|p| p.eta_secs())
        .map(|secs| format!(" · ETA {}", human_secs(secs)))
        .unwrap_or_default();
    ui.add(
        egui::ProgressBar::new(fraction)
            .show_percentage()
            .text(format!(
                "{:.0} % · {done} of {} done{eta}",
                fraction * 100.0,
                counts.total()
            )),
    );
    ui.horizontal_wrapped(|ui| {
        for state in [
            State::Sent,
            State::Failed,
            State::Bounced,
            State::Pending,
            State::Deferred,
            State::Sending,
            State::Uncertain,
            State::Skipped,
        ] {
            ui.colored_label(
                state_color(state),
                format!("{} {}", counts.get(state), state.as_str()),
            );
        }
        ui.colored_label(
            COMPLAINED,
            format!("{} complained", ctx.feedback.complained),
        );
        ui.colored_label(
            UNSUBSCRIBED,
            format!("{} unsubscribed", ctx.feedback.unsubscribed),
        );
        if ctx.feedback.unverified > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("{} unverified report(s) held", ctx.feedback.unverified),
            )
            .on_hover_text(UNVERIFIED_HOVER);
        }
        if let Some(progress) = progress {
            ui.separator();
            // A rate only while messages flow: "10 msg/s stopped" contradicted itself.
            if running && matches!(progress.state, RunState::Running) {
                ui.strong(format!("{:.0} msg/s", progress.rate_per_sec));
                ui.label(progress.state.label());
            } else if running {
                ui.label(progress.state.label());
            } else {
                ui.label(format!("last run {}", progress.state.label()));
            }
        }
    });
}

/// Messages per second during the run.
fn rate_chart_ui(ui: &mut egui::Ui, rate_history: &[[f64; 2]], running: bool) {
    let points: Vec<[f64; 2]> = rate_history.to_vec();
    if points.is_empty() {
        // An empty plot reads as a broken chart: say what it will show instead.
        ui.weak(if running {
            "Messages per second appear here as the run goes."
        } else {
            "Messages per second appear here while a run goes; the Results tab charts finished runs."
        });
    } else {
        Plot::new("rate_plot")
            .height(140.0)
            .allow_scroll(false)
            .allow_zoom(false)
            .include_y(0.0)
            .x_axis_label("seconds")
            .y_axis_label("msg/s")
            .show(ui, |plot| {
                plot.line(Line::new("messages per second", PlotPoints::from(points)));
            });
    }
}

/// Each route's figures and whether it is resting.
fn routes_ui(ui: &mut egui::Ui, progress: &Progress) {
    egui::Grid::new("routes").striped(true).show(ui, |ui| {
        for title in [
            "Route",
            "Sent",
            "Deferred",
            "Failed",
            "Connections",
            "Status",
        ] {
            ui.strong(title);
        }
        ui.end_row();
        for route in &progress.routes {
            ui.label(&route.name);
            ui.label(route.sent.to_string());
            ui.label(route.deferred.to_string());
            ui.label(route.failed.to_string());
            ui.label(route.connections.to_string());
            match &route.down {
                Some(reason) => {
                    ui.colored_label(state_color(State::Failed), format!("resting: {reason}"))
                }
                None => ui.label("up"),
            };
            ui.end_row();
        }
    });
}

/// The run's latest errors, newest first.
fn recent_errors_ui(ui: &mut egui::Ui, progress: &Progress) {
    ui.collapsing(
        format!("Latest errors ({})", progress.recent_errors.len()),
        |ui| {
            egui::ScrollArea::vertical()
                .id_salt("errors")
                .max_height(180.0)
                .show(ui, |ui| {
                    for error in progress.recent_errors.iter().rev() {
                        let code = error
                            .reply
                            .code
                            .map(|code| format!("{code} "))
                            .unwrap_or_default();
                        // Named by the class the Results view files it under (issue #20).
                        let class = crate::app::ReplyClass::of(&error.reply);
                        ui.horizontal_wrapped(|ui| {
                            ui.colored_label(state_color(error.state), error.state.as_str());
                            ui.strong(class.label());
                            ui.label(format!(
                                "{} via {}: {code}{}",
                                error.email, error.route, error.reply.text
                            ));
                        });
                    }
                });
        },
    );
}

fn delivery_ui(
    view: &mut PublishView,
    ui: &mut egui::Ui,
    ctx: &mut ViewContext<'_>,
    actions: &mut Vec<Action>,
) {
    ui.heading("Delivery");
    let delivery = &mut ctx.doc.raw.delivery;
    let mut mode = delivery.mode.clone().unwrap_or_else(|| "relay".into());
    ui.horizontal(|ui| {
        ui.label("Mode");
        ui.radio_value(&mut mode, "relay".to_string(), "Relay");
        ui.radio_value(&mut mode, "direct".to_string(), "Direct (MX)");
        ui.radio_value(&mut mode, "mixed".to_string(), "Mixed");
    });
    // Only what the user changed is written back: drawing must not make the campaign edited.
    if delivery.mode.as_deref().unwrap_or("relay") != mode {
        delivery.mode = Some(mode);
    }
    ui.add_space(4.0);
    ui.strong("Relays");
    let uses_relays = ctx.doc.raw.delivery.mode.as_deref() != Some("direct");
    if ctx.doc.raw.relays.is_empty() && uses_relays {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(
                "No relay yet. Press Add relay and enter your email provider's SMTP server                  (for example smtp.gmail.com, port 587, STARTTLS, your username), then Test                  connection. Or choose Direct (MX) to deliver to each recipient's mail server                  yourself.",
            );
        });
    }
    let mut remove = None;
    let scene = Scene::of(ctx);
    for (index, relay) in ctx.doc.raw.relays.iter_mut().enumerate() {
        let name = relay
            .name
            .clone()
            .unwrap_or_else(|| format!("relay {}", index + 1));
        egui::Frame::group(ui.style()).show(ui, |ui| {
            relay_ui(ui, index, relay);
            if let Some(grant) = relay.oauth2.clone() {
                view.signin.grant_ui(ui, scene, &grant, actions);
            } else {
                password_row_ui(view, ui, index, actions);
            }
            ui.horizontal(|ui| {
                if ui.button("Test connection").clicked() {
                    actions.push(Action::TestRelay(index));
                }
                if ui.button("Remove").clicked() {
                    remove = Some(index);
                }
                match view.relay_tests.get(&name) {
                    Some((tested, _)) if tested != &*relay => {
                        ui.weak("Changed since the last test: press Test connection again.");
                    }
                    Some((_, Ok(text))) => {
                        ui.colored_label(state_color(State::Sent), text);
                    }
                    Some((_, Err(text))) => {
                        ui.colored_label(state_color(State::Failed), text);
                    }
                    None => {}
                }
            });
        });
    }
    if let Some(index) = remove {
        ctx.doc.raw.relays.remove(index);
    }
    if ui.button("Add relay").clicked() {
        ctx.doc.raw.relays.push(RawRelay {
            name: Some(format!("relay {}", ctx.doc.raw.relays.len() + 1)),
            security: Some("starttls".into()),
            ..RawRelay::default()
        });
    }
}

/// A relay's password, typed and kept in the keyring under its `password_env`.
fn password_row_ui(
    view: &mut PublishView,
    ui: &mut egui::Ui,
    index: usize,
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        let label = ui.label("Password");
        let typed = view.password_inputs.entry(index).or_default();
        ui.add(
            egui::TextEdit::singleline(typed)
                .password(true)
                .desired_width(160.0),
        )
        .labelled_by(label.id);
        if ui.button("Keep in keyring").clicked() && !typed.is_empty() {
            actions.push(Action::StorePassword {
                index,
                password: std::mem::take(typed),
            });
        }
    });
}

fn text_cell(ui: &mut egui::Ui, label: &str, value: &mut Option<String>, width: f32) {
    let label = ui.label(label);
    let mut text = value.clone().unwrap_or_default();
    if ui
        .add(egui::TextEdit::singleline(&mut text).desired_width(width))
        .labelled_by(label.id)
        .changed()
    {
        *value = Some(text).filter(|text| !text.is_empty());
    }
}

fn number_cell(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) {
    let label = ui.label(label);
    let mut number = value.unwrap_or(default);
    if ui
        .add(egui::DragValue::new(&mut number).range(range))
        .labelled_by(label.id)
        .changed()
    {
        *value = Some(number);
    }
}

fn relay_ui(ui: &mut egui::Ui, index: usize, relay: &mut RawRelay) {
    ui.horizontal(|ui| {
        text_cell(ui, "Name", &mut relay.name, 90.0);
        text_cell(ui, "Host", &mut relay.host, 160.0);
        number_cell(ui, "Port", &mut relay.port, 587, 1..=65_535);
        let mut security = relay.security.clone().unwrap_or_else(|| "starttls".into());
        egui::ComboBox::from_id_salt(("security", index))
            .selected_text(security.clone())
            .show_ui(ui, |ui| {
                for choice in ["none", "starttls", "tls"] {
                    ui.selectable_value(&mut security, choice.to_string(), choice);
                }
            });
        if relay.security.as_deref().unwrap_or("starttls") != security {
            relay.security = Some(security);
        }
    });
    ui.horizontal(|ui| {
        text_cell(ui, "Username", &mut relay.username, 120.0);
        match &relay.oauth2 {
            Some(grant) => {
                ui.label(format!("Signs in with [oauth2.{grant}]"));
            }
            None => text_cell(ui, "Password variable", &mut relay.password_env, 140.0),
        }
    });
    ui.horizontal(|ui| {
        number_cell(ui, "Weight", &mut relay.weight, 1, 1..=1_000);
        number_cell(
            ui,
            "Max connections",
            &mut relay.max_connections,
            512,
            1..=512,
        );
        number_cell(
            ui,
            "Rate per hour",
            &mut relay.rate_per_hour,
            0,
            0..=100_000_000,
        );
    });
    if relay.oauth2.is_none() {
        ui.weak("The password is looked up under the variable name: first in the environment, then in the system keyring. It is never saved in the campaign.");
    }
}

fn options_ui(ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) {
    ui.heading("Options and performance");
    let delivery = &mut ctx.doc.raw.delivery;
    egui::Grid::new("options").num_columns(2).show(ui, |ui| {
        let label = ui.label("Connections");
        let mut connections = delivery.connections.unwrap_or(32);
        if ui
            .add(egui::Slider::new(&mut connections, 1..=512).logarithmic(true))
            .labelled_by(label.id)
            .changed()
        {
            delivery.connections = Some(connections);
        }
        ui.end_row();
        for (name, value, default, max) in [
            (
                "Rate per hour (0 = unlimited)",
                &mut delivery.rate_per_hour,
                0,
                100_000_000,
            ),
            (
                "Rest after N messages (0 = never)",
                &mut delivery.sleep_every,
                0,
                100_000_000,
            ),
            ("Rest for seconds", &mut delivery.sleep_seconds, 0, 86_400),
            ("Attempts per recipient", &mut delivery.max_attempts, 3, 100),
        ] {
            let label = ui.label(name);
            let mut number = value.unwrap_or(default);
            if ui
                .add(egui::DragValue::new(&mut number).range(0..=max))
                .labelled_by(label.id)
                .changed()
            {
                *value = Some(number);
            }
            ui.end_row();
        }
        let label = ui.label("Retry delays");
        let mut delays = delivery
            .retry_delays
            .clone()
            .unwrap_or_else(|| vec!["1m".into(), "5m".into(), "30m".into()])
            .join(", ");
        if ui
            .add(egui::TextEdit::singleline(&mut delays).desired_width(160.0))
            .labelled_by(label.id)
            .changed()
        {
            delivery.retry_delays = Some(
                delays
                    .split(',')
                    .map(|delay| delay.trim().to_string())
                    .filter(|delay| !delay.is_empty())
                    .collect(),
            );
        }
        ui.end_row();
        ui.label("When delivery is uncertain");
        let mut policy = delivery
            .uncertain
            .clone()
            .unwrap_or_else(|| "resend".into());
        ui.horizontal(|ui| {
            ui.radio_value(&mut policy, "resend".to_string(), "send again");
            ui.radio_value(&mut policy, "hold".to_string(), "hold for me");
        });
        if delivery.uncertain.as_deref().unwrap_or("resend") != policy {
            delivery.uncertain = Some(policy);
        }
        ui.end_row();
    });
}

fn human_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3_600, (secs % 3_600) / 60),
    }
}

/// What to do before Start can work: said above the figures, where the user looks first.
fn next_step_ui(ui: &mut egui::Ui, ctx: &ViewContext<'_>) {
    let uses_relays = ctx.doc.raw.delivery.mode.as_deref() != Some("direct");
    let step = if ctx.path.is_none() {
        Some("Save the campaign first (File > Save as…): a run sends a saved campaign.")
    } else if uses_relays && ctx.doc.raw.relays.is_empty() {
        Some("Next: add the relay your mail goes through (Delivery, below), then press Start.")
    } else if ctx.counts.total() == 0
        && ctx.doc.raw.recipients.csv.is_none()
        && ctx.doc.raw.recipients.list.is_none()
    {
        // Start imports a named list itself; without one there is nobody to send to.
        Some("Next: choose your list (CSV or Excel) on the Recipients tab, then press Start.")
    } else {
        None
    };
    if let Some(step) = step {
        ui.colored_label(ui.visuals().warn_fg_color, step);
    }
}

/// What Start did first: the unsubscribes pulled and the mailbox read (the DNS it checked is
/// in the Deliverability section).
fn before_start_ui(ui: &mut egui::Ui, found: &BeforeStart) {
    cautions_ui(ui, &found.cautions);
    match &found.pulled {
        Some(Ok(report)) => {
            ui.label(format!(
                "Before sending: {} new unsubscribe(s) pulled from {} ({} newly suppressed).",
                report.records, report.endpoint, report.applied.suppressed
            ));
        }
        Some(Err(error)) => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Before sending, the unsubscribe pull failed: {error}"),
            );
        }
        None => {}
    }
}

/// `herald check`'s deliverability warnings, red or amber (issue #20).
fn cautions_ui(ui: &mut egui::Ui, cautions: &[crate::app::check::Caution]) {
    if cautions.is_empty() {
        return;
    }
    ui.label("Before sending, the check found:");
    for caution in cautions {
        let color = match caution.level {
            crate::app::deliverability::Level::Red => ui.visuals().error_fg_color,
            _ => ui.visuals().warn_fg_color,
        };
        ui.colored_label(color, &caution.text);
    }
}

/// What an unverified report is, for the window's hover texts (issue #21).
pub const UNVERIFIED_HOVER: &str = "Reports that name a recipient without proving they concern your mail (no VERP tag, no keyed Message-ID): anyone who knows an address can write one, so they are held, not applied. Review them on the Suppression list page (Apply or Dismiss each), or with herald bounces CAMPAIGN.toml --apply-unverified";

/// The sentence a marketer reads about one mailbox check.
pub fn summary_text(summary: &Summary) -> String {
    format!(
        "{} message(s) read: {} hard bounce(s), {} soft, {} blocked, {} complaint(s), \
         {} unsubscribe(s), {} auto-repl(ies), {} unmatched, {} unrecognized, \
         {} unverified (held, not applied), {} too large, {} not fetched.",
        summary.read,
        summary.hard,
        summary.soft,
        summary.blocked,
        summary.complaints,
        summary.unsubscribes,
        summary.auto_replies,
        summary.unmatched,
        summary.unrecognized,
        summary.unverified,
        summary.too_large,
        summary.not_fetched
    )
}

/// Bounces, complaints and unsubscribes (issue #20: set up here, not by pasting TOML): the
/// bounce mailbox's settings with "Check mailbox" and its last result, then the unsubscribe
/// endpoint's.
fn feedback_ui(
    view: &mut PublishView,
    ui: &mut egui::Ui,
    ctx: &mut ViewContext<'_>,
    actions: &mut Vec<Action>,
) {
    ui.heading("Bounces and unsubscribes");
    if let Some(bounces) = &ctx.doc.raw.bounces {
        check_mailbox_ui(view, ui, ctx, bounces, actions);
        if let Some(Ok(summary)) = &view.mailbox {
            last_check_ui(ui, summary, view.mailbox_at_ms);
        } else if view.mailbox.is_none() && !view.mailbox_busy {
            ui.weak(
                "Not checked yet in this session: Start reads it first, or press Check mailbox.",
            );
        }
        if let Some(grant) = bounces.oauth2.clone() {
            view.signin.grant_ui(ui, Scene::of(ctx), &grant, actions);
        }
    } else {
        ui.label(
            "No bounce mailbox is set up, so bounces, spam complaints and unsubscribes by mail \
             are not read: set one up under Mailbox and unsubscribe settings.",
        );
    }
    // Folded by default: the run and the relays stay in view above the fold.
    egui::CollapsingHeader::new("Mailbox and unsubscribe settings")
        .id_salt("feedback_settings")
        .show(ui, |ui| {
            mailbox_settings_ui(view, ui, ctx, actions);
            ui.add_space(6.0);
            unsubscribe_settings_ui(ui, ctx);
        });
}

/// The `[bounces]` mailbox as fields. Drawing changes nothing: the section is written only
/// once a field is filled in, and taken out by "Remove mailbox".
fn mailbox_settings_ui(
    view: &mut PublishView,
    ui: &mut egui::Ui,
    ctx: &mut ViewContext<'_>,
    actions: &mut Vec<Action>,
) {
    let before = ctx.doc.raw.bounces.clone();
    ui.strong("Bounce mailbox (IMAP): where bounces, complaints and replies come back");
    let mut bounces = before.clone().unwrap_or_default();
    egui::Grid::new("bounce_mailbox")
        .num_columns(2)
        .show(ui, |ui| {
            grid_text(ui, "Mailbox host", "imap.example.com", &mut bounces.host);
            let security = choice_ui(
                ui,
                "Mailbox security",
                &mut bounces.security,
                &["tls", "starttls", "none"],
            );
            let default_port = crate::campaign::Security::parse(Some(&security))
                .map_or(993, RawBounces::default_port);
            let label = ui.label("Mailbox port");
            let mut port = bounces.port.unwrap_or(i64::from(default_port));
            if ui
                .add(egui::DragValue::new(&mut port).range(1..=65_535))
                .labelled_by(label.id)
                .changed()
            {
                bounces.port = Some(port);
            }
            ui.end_row();
            grid_text(
                ui,
                "Mailbox username",
                "bounces@example.com",
                &mut bounces.username,
            );
            // A mailbox that signs in with an `[oauth2.NAME]` grant has no password: its
            // sign-in row is shown above.
            if bounces.oauth2.is_none() {
                mailbox_password_row(view, ui, &bounces, actions);
            }
            grid_text(ui, "Bounce folder", "INBOX", &mut bounces.folder);
            grid_text(
                ui,
                "Return path",
                "bounces@example.com",
                &mut bounces.return_path,
            );
        });
    ui.weak(
        "Messages go out with the return path bounces+TAG@…, so each bounce names its \
         recipient. Herald reads the mailbox before every send and when you press Check \
         mailbox, and never deletes anything in it.",
    );
    if before.is_some() && ui.button("Remove mailbox").clicked() {
        ctx.doc.raw.bounces = None;
        return;
    }
    if bounces != before.clone().unwrap_or_default() {
        ctx.doc.raw.bounces = Some(bounces);
    }
}

/// The mailbox password row of the settings grid: typed, then kept in the keyring (never in
/// the campaign file).
fn mailbox_password_row(
    view: &mut PublishView,
    ui: &mut egui::Ui,
    bounces: &RawBounces,
    actions: &mut Vec<Action>,
) {
    let label = ui.label("Mailbox password");
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut view.mailbox_password)
                .id_salt("mailbox_password")
                .password(true)
                .desired_width(160.0),
        )
        .labelled_by(label.id);
        if ui
            .button("Keep mailbox password in keyring")
            .on_hover_text(format!(
                "Kept in the system keyring under {}; never in the campaign file",
                bounces.password_name()
            ))
            .clicked()
            && !view.mailbox_password.is_empty()
        {
            actions.push(Action::StoreMailboxPassword(std::mem::take(
                &mut view.mailbox_password,
            )));
        }
    });
    ui.end_row();
}

/// The `[unsubscribe]` endpoint as fields: the signed link each message carries and the
/// endpoint Start pulls unsubscribes from. Written only once filled in; emptied, it goes.
fn unsubscribe_settings_ui(ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) {
    ui.strong("Unsubscribe endpoint");
    let before = ctx.doc.raw.unsubscribe.clone();
    let mut unsubscribe = before.clone().unwrap_or_default();
    egui::Grid::new("unsubscribe_endpoint")
        .num_columns(2)
        .show(ui, |ui| {
            grid_text(
                ui,
                "Unsubscribe link",
                "https://u.example.com/u/{token}",
                &mut unsubscribe.url,
            );
            grid_text(
                ui,
                "Endpoint to pull",
                "https://u.example.com",
                &mut unsubscribe.endpoint,
            );
        });
    ui.weak(
        "The link carries a signed token instead of the address; herald unsubscribe-server \
         answers it, and Start pulls who left from the endpoint before sending.",
    );
    let emptied = unsubscribe == crate::campaign::RawUnsubscribe::default();
    if unsubscribe != before.clone().unwrap_or_default() {
        ctx.doc.raw.unsubscribe = (!emptied).then_some(unsubscribe);
    }
}

/// One row of a settings grid: a label and its text field, bound to an optional value.
fn grid_text(ui: &mut egui::Ui, name: &str, hint: &str, value: &mut Option<String>) {
    let label = ui.label(name);
    let mut text = value.clone().unwrap_or_default();
    if ui
        .add(
            // Its own id: the text above changes once the section exists, and an id by
            // position would then lose the focus in the middle of typing.
            egui::TextEdit::singleline(&mut text)
                .id_salt(("settings", name))
                .hint_text(hint)
                .desired_width(240.0),
        )
        .labelled_by(label.id)
        .changed()
    {
        *value = Some(text).filter(|text| !text.trim().is_empty());
    }
    ui.end_row();
}

/// One row of a settings grid with a choice of words; returns the word shown (the first when
/// none is set). Sets the value only when the user picks another.
fn choice_ui(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<String>,
    choices: &[&str],
) -> String {
    ui.label(label);
    let first = choices.first().copied().unwrap_or_default();
    let mut chosen = value.clone().unwrap_or_else(|| first.to_string());
    egui::ComboBox::from_id_salt(label)
        .selected_text(chosen.clone())
        .show_ui(ui, |ui| {
            for choice in choices {
                ui.selectable_value(&mut chosen, choice.to_string(), *choice);
            }
        });
    if value.as_deref().unwrap_or(first) != chosen {
        *value = Some(chosen.clone());
    }
    ui.end_row();
    chosen
}

/// "Check mailbox", the account it reads, and the last check's error.
fn check_mailbox_ui(
    view: &PublishView,
    ui: &mut egui::Ui,
    ctx: &ViewContext<'_>,
    bounces: &RawBounces,
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        // Not while a run goes: the check holds the service (IMAP can take minutes on a slow
        // server), and Pause and Stop must never wait behind it.
        let ready = ctx.path.is_some() && !view.mailbox_busy && !ctx.running;
        let hint = if ctx.running {
            "The mailbox is read before each send; check it again once this run has ended"
        } else {
            "Read the bounce mailbox now and apply what came back"
        };
        if ui
            .add_enabled(ready, egui::Button::new("Check mailbox"))
            .on_hover_text(hint)
            .on_disabled_hover_text(hint)
            .clicked()
        {
            actions.push(Action::CheckMailbox);
        }
        let account = match (&bounces.username, &bounces.host) {
            (Some(user), Some(host)) => format!("{user} on {host}"),
            (None, Some(host)) => host.clone(),
            _ => "the [bounces] mailbox".to_string(),
        };
        if view.mailbox_busy {
            ui.spinner();
            ui.label(format!("Reading {account}…"));
        } else {
            ui.weak(account);
        }
        if let Some(Err(error)) = &view.mailbox {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    });
}

/// What the last check read, figure by figure, and the sender warnings it found.
fn last_check_ui(ui: &mut egui::Ui, summary: &Summary, checked_at_ms: Option<i64>) {
    let when = checked_at_ms
        .map(|at| super::library_ui::ago(crate::app::now_ms(), at))
        .unwrap_or_default();
    ui.label(format!(
        "Last check, {when}: {} message(s) read.",
        summary.read
    ))
    .on_hover_text(summary_text(summary));
    ui.horizontal_wrapped(|ui| {
        for (title, figure, color) in [
            ("Hard bounces", summary.hard, state_color(State::Bounced)),
            ("Soft bounces", summary.soft, state_color(State::Deferred)),
            ("Blocked", summary.blocked, state_color(State::Failed)),
            ("Complaints", summary.complaints, COMPLAINED),
            ("Unsubscribes", summary.unsubscribes, UNSUBSCRIBED),
            (
                "Auto-replies",
                summary.auto_replies,
                ui.visuals().text_color(),
            ),
            (
                "Unmatched",
                summary.unmatched,
                ui.visuals().weak_text_color(),
            ),
            (
                "Unrecognized",
                summary.unrecognized,
                ui.visuals().weak_text_color(),
            ),
        ] {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_min_width(84.0);
                ui.vertical(|ui| {
                    ui.weak(title);
                    ui.label(
                        egui::RichText::new(figure.to_string())
                            .size(18.0)
                            .color(color),
                    );
                });
            });
        }
    });
    if summary.bounced + summary.suppressed > 0 {
        ui.label(format!(
            "{} recipient(s) marked bounced; {} address(es) added to the suppression list.",
            summary.bounced, summary.suppressed
        ));
    }
    for warning in &summary.warnings {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("Sender warning: {warning}"),
        );
    }
    for passed in &summary.passed {
        ui.weak(format!("Left in the mailbox: {passed}"));
    }
}
